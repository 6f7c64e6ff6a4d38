//! Pure decisions of the block worker: how orders group into blocks, how a
//! slice is sized and split over legs. No I/O, no clock reads.

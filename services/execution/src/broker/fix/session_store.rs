//! The `hotfix` message store over the service's database: sequence numbers
//! and sent messages survive a restart (or a kill), so the session resumes
//! where it was and a resend request after a gap can be answered. The
//! engine reads sequence numbers synchronously, so they are kept in memory
//! too and written through on every change.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hotfix_store::MessageStore;
use hotfix_store::error::{BoxError, Result, StoreError};

use crate::broker::fix::store::{FixBook, SessionState};

/// One FIX session's store.
#[derive(Debug)]
pub struct SqlMessageStore {
    book: Arc<dyn FixBook>,
    key: String,
    state: SessionState,
}

fn boxed(error: crate::store::StoreError) -> BoxError {
    Box::new(error)
}

impl SqlMessageStore {
    /// Loads (or creates) the session `key`'s state.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn open(
        book: Arc<dyn FixBook>,
        key: String,
    ) -> std::result::Result<Self, crate::store::StoreError> {
        let state = book.fix_session(&key, Utc::now()).await?;
        Ok(Self { book, key, state })
    }

    async fn save_target(&self) -> Result<()> {
        self.book
            .set_fix_target_seq(&self.key, self.state.next_target_seq)
            .await
            .map_err(|error| StoreError::UpdateSequenceNumber(boxed(error)))
    }
}

#[async_trait::async_trait]
impl MessageStore for SqlMessageStore {
    async fn add(&mut self, sequence_number: u64, message: &[u8]) -> Result<()> {
        self.book
            .add_fix_message(&self.key, sequence_number, message)
            .await
            .map_err(|error| StoreError::PersistMessage {
                sequence_number,
                source: boxed(error),
            })
    }

    async fn get_slice(&self, begin: usize, end: usize) -> Result<Vec<Vec<u8>>> {
        self.book
            .fix_messages(
                &self.key,
                u64::try_from(begin).unwrap_or(u64::MAX),
                u64::try_from(end).unwrap_or(u64::MAX),
            )
            .await
            .map_err(|error| StoreError::RetrieveMessages {
                begin,
                end,
                source: boxed(error),
            })
    }

    fn next_sender_seq_number(&self) -> u64 {
        self.state.next_sender_seq
    }

    fn next_target_seq_number(&self) -> u64 {
        self.state.next_target_seq
    }

    /// The engine takes a number and then stores its message ([`Self::add`]
    /// persists both together), so the increment itself stays in memory.
    async fn increment_sender_seq_number(&mut self) -> Result<()> {
        self.state.next_sender_seq += 1;
        Ok(())
    }

    async fn increment_target_seq_number(&mut self) -> Result<()> {
        self.state.next_target_seq += 1;
        self.save_target().await
    }

    /// `seq_number` is the last message received: the next is one more.
    async fn set_target_seq_number(&mut self, seq_number: u64) -> Result<()> {
        self.state.next_target_seq = seq_number + 1;
        self.save_target().await
    }

    async fn reset(&mut self) -> Result<()> {
        let now = Utc::now();
        self.book
            .reset_fix_session(&self.key, now)
            .await
            .map_err(|error| StoreError::Reset(boxed(error)))?;
        self.state = SessionState {
            next_sender_seq: 1,
            next_target_seq: 1,
            created_at: now,
        };
        Ok(())
    }

    fn creation_time(&self) -> DateTime<Utc> {
        self.state.created_at
    }
}

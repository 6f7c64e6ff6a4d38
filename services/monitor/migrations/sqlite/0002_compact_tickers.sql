-- Tickers of an evaluation in a compact text form (see store/tickers.rs):
-- a quarter of the JSON's size. Rows written before keep tickers_json.
-- One way: new rows leave tickers_json empty, which a binary from before
-- this migration cannot read, so replicas are upgraded before they serve.
ALTER TABLE evaluations ADD COLUMN tickers TEXT NOT NULL DEFAULT '';

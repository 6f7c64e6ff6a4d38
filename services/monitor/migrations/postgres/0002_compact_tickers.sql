-- Tickers of an evaluation in a compact text form (see store/tickers.rs):
-- a quarter of the JSON's size. Rows written before keep tickers_json.
ALTER TABLE evaluations ADD COLUMN tickers TEXT NOT NULL DEFAULT '';

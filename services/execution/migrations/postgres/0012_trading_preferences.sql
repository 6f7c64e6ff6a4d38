-- An account's trading preferences (restricted symbols, substitutes, cash
-- reserve) as JSON; '' is none. Set by SetTradingPreferences only.
ALTER TABLE accounts ADD COLUMN preferences TEXT NOT NULL DEFAULT '';

-- Hybrid policies (Vanguard, "Best practices for portfolio rebalancing",
-- 2010): a calendar condition whose days are review days that trade only
-- outside the bands; and whether full rebalances go to target or to the
-- band's edge; per-asset trading rules (JSON, '' for none). Existing rows keep
-- today's behaviour.
ALTER TABLE portfolio_conditions ADD COLUMN only_outside_bands BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE portfolio_versions ADD COLUMN rebalance_to TEXT NOT NULL DEFAULT 'target'
    CHECK (rebalance_to IN ('target', 'band_edge'));
ALTER TABLE portfolio_versions ADD COLUMN asset_rules TEXT NOT NULL DEFAULT '';

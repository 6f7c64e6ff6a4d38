-- Cash moved by each allocation, to the cent. An order's cash follows its
-- filled value rounded to the cent (not the sum of each fill rounded), and a
-- cross splits its dollars so both sides move exactly the same amount.
-- NULL on rows written before: they moved their value rounded to the cent.
ALTER TABLE allocations ADD COLUMN amount NUMERIC;
ALTER TABLE orders ADD COLUMN filled_amount NUMERIC;

-- Fills crossed internally against the other side of the same symbol
-- (netting across accounts): no child order, never sent to the market.
ALTER TABLE fills ADD COLUMN crossed BOOLEAN NOT NULL DEFAULT FALSE;

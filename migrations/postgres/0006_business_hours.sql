-- When the team is there: timezone, weekly opening times and holidays, as the
-- JSON the API takes. NULL: no hours set (always open).
ALTER TABLE workspace ADD COLUMN business_hours TEXT;

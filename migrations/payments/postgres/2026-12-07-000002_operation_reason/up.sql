-- Why a refund was made, as the person or integrator gave it: shown with the operation,
-- exported and sent in its callback. Keep the other database's twin of this file in step.
ALTER TABLE operations ADD COLUMN reason TEXT;

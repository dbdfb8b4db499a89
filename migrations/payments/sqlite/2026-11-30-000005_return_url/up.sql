-- Where the customer goes after the 3-D Secure challenge (the merchant's page), with the
-- payment's id and status added to it.
ALTER TABLE payments ADD COLUMN return_url TEXT;

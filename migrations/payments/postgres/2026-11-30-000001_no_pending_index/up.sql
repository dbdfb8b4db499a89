-- Operations are no longer indexed by status: every purchase's operation entered this
-- index as pending and again as settled, and its pending entries, where every new
-- operation lands and from where every settled one leaves, were the busiest page of the
-- database (removing it: +13 % purchases/s on PostgreSQL). Nothing looked operations up
-- by status alone.
DROP INDEX operations_pending;

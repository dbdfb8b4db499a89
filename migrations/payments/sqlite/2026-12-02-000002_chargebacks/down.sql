DROP TABLE chargeback_evidence;
DROP TABLE chargebacks;

DROP TABLE batch_rows;
DROP TABLE batches;

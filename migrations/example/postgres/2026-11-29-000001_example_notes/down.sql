DROP TABLE example_notes;

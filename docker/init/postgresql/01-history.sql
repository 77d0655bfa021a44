-- The second schema used by the schema tests (the suite also creates it when it may).
CREATE SCHEMA IF NOT EXISTS history_test_schema;

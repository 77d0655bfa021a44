-- MySQL and MariaDB: a schema is a database. utf8mb4 like the test database.
CREATE DATABASE IF NOT EXISTS history_test_schema CHARACTER SET utf8mb4;

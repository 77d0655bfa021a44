-- A real test database (not tempdb), with snapshot isolation so that readers do not
-- block writers the way SQL Server's default locking READ COMMITTED does.
IF DB_ID(N'history_test') IS NULL CREATE DATABASE history_test;
GO
ALTER DATABASE history_test SET ALLOW_SNAPSHOT_ISOLATION ON;
GO
ALTER DATABASE history_test SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE;
GO
USE history_test;
GO
IF SCHEMA_ID(N'history_test_schema') IS NULL EXEC('CREATE SCHEMA history_test_schema');
GO

-- The run log is read and trimmed newest first by id (time-ordered, given
-- when the run is logged), per automation.
DROP INDEX automation_run_log;
CREATE INDEX automation_run_log ON automation_run (automation_id, id);

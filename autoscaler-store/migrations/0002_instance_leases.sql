-- Leases that share monitored instances among server replicas on one database.
--
-- Each replica claims a share of the monitored instances at every tick and collects and
-- decides only those. A lease names the replica (its holder id) and the time it ends; once
-- that time passes, any replica may claim the instance.

ALTER TABLE instances
    ADD COLUMN lease_holder uuid,
    ADD COLUMN lease_until  timestamptz,
    ADD CONSTRAINT instances_lease_pair CHECK ((lease_holder IS NULL) = (lease_until IS NULL));

-- A replica reads and renews its own leases at every tick.
CREATE INDEX instances_lease_holder ON instances (lease_holder) WHERE is_monitoring;

-- One row per replica that claimed recently. A replica's fair share is the number of
-- monitored instances divided by the replicas whose lease_until has not passed, rounded up.
CREATE TABLE replicas (
    holder       uuid        PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL,
    lease_until  timestamptz NOT NULL
);

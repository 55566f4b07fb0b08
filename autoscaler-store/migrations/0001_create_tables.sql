-- Users, instances, samples and decision records of the autoscaler.
--
-- Timestamps are timestamptz (microsecond precision), metric values double precision and
-- scale levels bigint, because PostgreSQL has no unsigned 32-bit type.

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE instances (
    id                    uuid        PRIMARY KEY,
    -- Registration order; breaks ties between equal created_at values.
    seq                   bigint      GENERATED ALWAYS AS IDENTITY,
    owner_id              uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id           text        NOT NULL,
    instance_type         text        NOT NULL,
    region                text        NOT NULL,
    is_mock               boolean     NOT NULL,
    is_monitoring         boolean     NOT NULL DEFAULT false,
    scale_level           bigint      NOT NULL DEFAULT 1
                                      CHECK (scale_level BETWEEN 0 AND 4294967295),
    last_action_at        timestamptz,
    last_evaluated_sample timestamptz,
    created_at            timestamptz NOT NULL,
    collection_error      text,
    collection_error_at   timestamptz,
    CONSTRAINT instances_instance_id_key UNIQUE (instance_id),
    CONSTRAINT instances_collection_error_pair
        CHECK ((collection_error IS NULL) = (collection_error_at IS NULL))
);

CREATE INDEX instances_owner_id ON instances (owner_id, created_at, seq);
CREATE INDEX instances_monitored ON instances (seq) WHERE is_monitoring;

CREATE TABLE samples (
    id              uuid             PRIMARY KEY,
    instance        uuid             NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    taken_at        timestamptz      NOT NULL,
    cpu_utilization double precision NOT NULL CHECK (cpu_utilization BETWEEN 0 AND 100),
    memory_usage    double precision CHECK (memory_usage BETWEEN 0 AND 100),
    network_in      double precision CHECK (network_in >= 0 AND network_in < 'Infinity'),
    network_out     double precision CHECK (network_out >= 0 AND network_out < 'Infinity'),
    -- The decision of the sustained rule that flagged this sample, if one did.
    outlier_type    text             CHECK (outlier_type IN ('scale_up', 'scale_down', 'no_action')),
    -- One sample per instance and timestamp; window reads are range scans of this index.
    CONSTRAINT samples_instance_taken_at_key UNIQUE (instance, taken_at)
);

-- Retention deletes the oldest samples of all instances.
CREATE INDEX samples_taken_at ON samples (taken_at);

CREATE TABLE decisions (
    id           uuid        PRIMARY KEY,
    -- Insertion order; breaks ties between equal evaluated_at values.
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    instance     uuid        NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    evaluated_at timestamptz NOT NULL,
    decision     text        NOT NULL CHECK (decision IN ('scale_up', 'scale_down', 'no_action')),
    rule         text        NOT NULL,
    reason       text        NOT NULL,
    outcome      jsonb       NOT NULL,
    level_before bigint      NOT NULL CHECK (level_before BETWEEN 0 AND 4294967295),
    level_after  bigint      NOT NULL CHECK (level_after BETWEEN 0 AND 4294967295),
    evidence     jsonb       NOT NULL
);

CREATE INDEX decisions_instance_evaluated_at ON decisions (instance, evaluated_at, seq);
-- Retention deletes the oldest decisions of all instances.
CREATE INDEX decisions_evaluated_at ON decisions (evaluated_at);

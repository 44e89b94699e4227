"""The schema, as an append-only list of named migrations. Never edit a step; add one."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_people",
        """
        CREATE SEQUENCE users_id;
        CREATE TABLE users (
            id BIGINT PRIMARY KEY DEFAULT nextval('users_id'),
            name VARCHAR NOT NULL UNIQUE,
            password_hash VARCHAR NOT NULL,
            is_admin BOOLEAN NOT NULL DEFAULT false,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE tokens (
            hash VARCHAR PRIMARY KEY,
            user_id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,          -- api | session | run
            label VARCHAR,
            run_id BIGINT,                  -- set for a run's step token
            created_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP,
            revoked BOOLEAN NOT NULL DEFAULT false
        );
        CREATE SEQUENCE projects_id;
        CREATE TABLE projects (
            id BIGINT PRIMARY KEY DEFAULT nextval('projects_id'),
            name VARCHAR NOT NULL UNIQUE,
            description VARCHAR NOT NULL DEFAULT '',
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE members (
            project_id BIGINT NOT NULL,
            user_id BIGINT NOT NULL,
            role VARCHAR NOT NULL,
            PRIMARY KEY (project_id, user_id)
        );
        CREATE SEQUENCE audit_id;
        CREATE TABLE audit (
            id BIGINT PRIMARY KEY DEFAULT nextval('audit_id'),
            "at" TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            project VARCHAR,
            target VARCHAR NOT NULL,
            detail JSON
        );
        """,
    ),
    (
        "0002_datasets",
        """
        CREATE SEQUENCE datasets_id;
        CREATE TABLE datasets (
            id BIGINT PRIMARY KEY DEFAULT nextval('datasets_id'),
            project_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE TABLE dataset_versions (
            dataset_id BIGINT NOT NULL,
            version INTEGER NOT NULL,       -- the Lance version number
            message VARCHAR NOT NULL DEFAULT '',
            author VARCHAR NOT NULL,
            num_rows BIGINT NOT NULL,
            columns JSON NOT NULL,
            source VARCHAR NOT NULL DEFAULT '',  -- file name, or run that produced it
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, version)
        );
        """,
    ),
    (
        "0003_pipelines_runs",
        """
        CREATE SEQUENCE pipelines_id;
        CREATE TABLE pipelines (
            id BIGINT PRIMARY KEY DEFAULT nextval('pipelines_id'),
            project_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            spec JSON NOT NULL,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE SEQUENCE runs_id;
        CREATE TABLE runs (
            id BIGINT PRIMARY KEY DEFAULT nextval('runs_id'),
            project_id BIGINT NOT NULL,
            pipeline VARCHAR,
            status VARCHAR NOT NULL,        -- queued | running | succeeded | failed | cancelled
            spec JSON NOT NULL,             -- the pipeline as pinned for this run
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            error VARCHAR,
            rerun_of BIGINT
        );
        CREATE SEQUENCE steps_id;
        CREATE TABLE steps (
            id BIGINT PRIMARY KEY DEFAULT nextval('steps_id'),
            run_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            module VARCHAR NOT NULL,        -- project/module
            commit_sha VARCHAR NOT NULL,
            params JSON NOT NULL,
            inputs JSON NOT NULL,           -- name -> pinned reference
            outputs JSON NOT NULL,          -- name -> kind
            status VARCHAR NOT NULL,  -- pending queued running succeeded failed skipped cancelled
            timeout_s DOUBLE NOT NULL,
            task_id VARCHAR,
            pid INTEGER,
            pid_started DOUBLE,
            exit_code INTEGER,
            error VARCHAR,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            UNIQUE (run_id, name)
        );
        CREATE TABLE run_params (
            run_id BIGINT NOT NULL,
            step VARCHAR NOT NULL,
            key VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            PRIMARY KEY (run_id, step, key)
        );
        CREATE TABLE metrics (
            run_id BIGINT NOT NULL,
            step_name VARCHAR NOT NULL,
            key VARCHAR NOT NULL,
            value DOUBLE,
            step BIGINT,
            ts TIMESTAMP NOT NULL
        );
        CREATE SEQUENCE artifacts_id;
        CREATE TABLE artifacts (
            id BIGINT PRIMARY KEY DEFAULT nextval('artifacts_id'),
            run_id BIGINT NOT NULL,
            step_name VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            digest VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "0004_models",
        """
        CREATE SEQUENCE models_id;
        CREATE TABLE models (
            id BIGINT PRIMARY KEY DEFAULT nextval('models_id'),
            project_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            created_at TIMESTAMP NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE TABLE model_versions (
            model_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            run_id BIGINT NOT NULL,
            step_name VARCHAR NOT NULL,
            onnx_digest VARCHAR NOT NULL,
            schema JSON NOT NULL,
            parity_max_diff DOUBLE NOT NULL,
            metrics JSON NOT NULL,
            lineage JSON NOT NULL,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, version)
        );
        CREATE TABLE model_aliases (
            model_id BIGINT NOT NULL,
            alias VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (model_id, alias)
        );
        """,
    ),
    (
        "0005_tracking",
        """
        ALTER TABLE runs ADD COLUMN name VARCHAR;
        ALTER TABLE steps ADD COLUMN record JSON;
        CREATE SEQUENCE comments_id;
        CREATE TABLE comments (
            id BIGINT PRIMARY KEY DEFAULT nextval('comments_id'),
            run_id BIGINT NOT NULL,
            author VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "0006_dataset_rules",
        """
        CREATE TABLE dataset_rules (
            dataset_id BIGINT PRIMARY KEY,
            rules JSON NOT NULL,            -- [{type, column?, min?, max?, values?, threshold?}]
            updated_by VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE dataset_checks (
            dataset_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            passed BOOLEAN NOT NULL,
            checks JSON NOT NULL,           -- one result per rule: passed, failures, examples
            checked_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, version)
        );
        """,
    ),
    (
        "0007_model_ops",
        """
        ALTER TABLE models ADD COLUMN card JSON;      -- {"intended_use", "limitations"}
        ALTER TABLE models ADD COLUMN gates JSON;     -- {"aliases": [...], "checks": [...]}
        ALTER TABLE models ADD COLUMN traffic JSON;   -- {"mode", "version", "percent"}
        ALTER TABLE models ADD COLUMN monitor JSON;   -- drift and accuracy thresholds
        ALTER TABLE model_versions ADD COLUMN reference JSON;  -- training quantile bins
        CREATE TABLE project_gates (
            project_id BIGINT PRIMARY KEY,
            gates JSON NOT NULL
        );
        CREATE SEQUENCE model_promotions_id;
        CREATE TABLE model_promotions (
            id BIGINT PRIMARY KEY DEFAULT nextval('model_promotions_id'),
            model_id BIGINT NOT NULL,
            alias VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            previous INTEGER,               -- what the alias pointed at before
            action VARCHAR NOT NULL,        -- promote | rollback
            actor VARCHAR NOT NULL,
            override BOOLEAN NOT NULL DEFAULT false,
            checks JSON NOT NULL,
            "at" TIMESTAMP NOT NULL
        );
        CREATE TABLE prediction_feedback (
            model_id BIGINT NOT NULL,
            request_id VARCHAR NOT NULL,
            "row" INTEGER NOT NULL,
            label VARCHAR NOT NULL,
            author VARCHAR NOT NULL,
            "at" TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, request_id, "row")
        );
        CREATE TABLE model_alerts (
            model_id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,          -- drift | accuracy
            version INTEGER NOT NULL,
            message VARCHAR NOT NULL,
            detail JSON NOT NULL,
            raised_at TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, kind)
        );
        """,
    ),
    (
        "0008_step_cache",
        """
        ALTER TABLE steps ADD COLUMN cache_key VARCHAR;
        ALTER TABLE steps ADD COLUMN cached_from BIGINT;
        """,
    ),
    (
        "0009_sweeps",
        """
        CREATE SEQUENCE sweeps_id;
        CREATE TABLE sweeps (
            id BIGINT PRIMARY KEY DEFAULT nextval('sweeps_id'),
            project_id BIGINT NOT NULL,
            pipeline VARCHAR NOT NULL,
            spec JSON NOT NULL,             -- step, search space, metric, goal
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        ALTER TABLE runs ADD COLUMN sweep_id BIGINT;
        """,
    ),
    (
        "0010_step_gpus",
        """
        ALTER TABLE steps ADD COLUMN gpus INTEGER DEFAULT 0;
        ALTER TABLE steps ADD COLUMN gpu_ids VARCHAR;
        """,
    ),
    (
        "0011_step_limits",
        """
        ALTER TABLE steps ADD COLUMN memory_mb INTEGER;       -- killed above this resident size
        ALTER TABLE steps ADD COLUMN retries INTEGER DEFAULT 0;  -- automatic retries allowed
        ALTER TABLE steps ADD COLUMN attempt INTEGER DEFAULT 0;  -- retries used so far
        """,
    ),
    (
        "0012_step_workers",
        """
        CREATE TABLE step_workers (         -- steps run by a remote `reef worker`
            step_id BIGINT PRIMARY KEY,
            worker VARCHAR NOT NULL,        -- the name the worker gave (host:pid by default)
            claimed_by VARCHAR NOT NULL,    -- the user whose token the worker used
            claimed_at TIMESTAMP NOT NULL,
            heartbeat_at TIMESTAMP NOT NULL, -- its last call about this step
            active BOOLEAN NOT NULL DEFAULT true  -- false once the step left the worker
        );
        """,
    ),
    (
        "0013_run_metrics",
        """
        CREATE TABLE run_metrics (          -- one row per run and metric key, kept on ingest
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            value DOUBLE,                   -- the latest point: last by (ts, step)
            step BIGINT,
            ts TIMESTAMP NOT NULL,
            value_min DOUBLE,
            value_max DOUBLE,
            points BIGINT NOT NULL,
            PRIMARY KEY (run_id, key)
        );
        INSERT INTO run_metrics
        SELECT run_id, key, last(value ORDER BY ts, step), last(step ORDER BY ts, step),
               max(ts), min(value), max(value), count(*)
        FROM metrics GROUP BY run_id, key;
        """,
    ),
    (
        "0014_dataset_produced_by",
        """
        ALTER TABLE dataset_versions ADD COLUMN produced_run BIGINT;   -- the run whose step
        ALTER TABLE dataset_versions ADD COLUMN produced_step VARCHAR; -- published this version
        """,
    ),
    (
        "0015_batch_jobs",
        """
        CREATE SEQUENCE batch_jobs_id;
        CREATE TABLE batch_jobs (           -- batch predictions, queued and run in the server
            id BIGINT PRIMARY KEY DEFAULT nextval('batch_jobs_id'),
            model_id BIGINT NOT NULL,
            request JSON NOT NULL,          -- dataset, version, output, column, model_version
            status VARCHAR NOT NULL,        -- queued | running | done | failed
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            result JSON,                    -- the dataset version written, when done
            error VARCHAR
        );
        """,
    ),
    (
        "0020_user_admin",
        """
        ALTER TABLE users ADD COLUMN disabled BOOLEAN DEFAULT false;
        ALTER TABLE users ADD COLUMN may_create_projects BOOLEAN DEFAULT false;
        ALTER TABLE users ADD COLUMN must_change_password BOOLEAN DEFAULT false;
        ALTER TABLE tokens ADD COLUMN last_used_at TIMESTAMP;
        CREATE TABLE site_settings (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
        """,
    ),
    (
        "0110_mlflow",
        """
        CREATE TABLE mlflow_experiments (   -- an MLflow experiment is a project; its MLflow name
            project_id BIGINT PRIMARY KEY,  -- may be any text, the project's is URL-safe
            name VARCHAR NOT NULL UNIQUE,
            lifecycle_stage VARCHAR NOT NULL DEFAULT 'active',
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE experiment_tags (
            project_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            PRIMARY KEY (project_id, key)
        );
        CREATE TABLE run_tags (
            run_id BIGINT NOT NULL,
            key VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            PRIMARY KEY (run_id, key)
        );
        ALTER TABLE runs ADD COLUMN deleted_at TIMESTAMP;
        CREATE TABLE logged_models (        -- MLflow 3's logged models (mlflow.<flavor>.log_model)
            model_id VARCHAR PRIMARY KEY,   -- m-<32 hex>
            project_id BIGINT NOT NULL,
            run_id BIGINT,                  -- the run that logged it
            name VARCHAR NOT NULL,
            model_type VARCHAR,
            status VARCHAR NOT NULL,        -- LOGGED_MODEL_PENDING | _READY | _UPLOAD_FAILED
            params JSON NOT NULL,
            tags JSON NOT NULL,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE mlflow_registered_models (  -- MLflow's registry names; a reef model of the
            name VARCHAR PRIMARY KEY,             -- same name lives in project_id once a
            project_id BIGINT,                    -- version is registered
            description VARCHAR NOT NULL DEFAULT '',
            tags JSON NOT NULL,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE mlflow_model_versions (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            reef_version INTEGER,           -- the reef model version, when it could be exported
            source VARCHAR NOT NULL,
            run_id BIGINT,
            model_id VARCHAR,
            status_message VARCHAR NOT NULL DEFAULT '',
            tags JSON NOT NULL,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (name, version)
        );
        """,
    ),
    (
        "0090_inbox",
        """
        CREATE SEQUENCE item_comments_id;
        CREATE TABLE item_comments (        -- comments on models and dataset versions
            id BIGINT PRIMARY KEY DEFAULT nextval('item_comments_id'),
            project_id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,          -- model | dataset
            target VARCHAR NOT NULL,        -- model name, or dataset NAME@VERSION
            author VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE follows (              -- who wants to hear about an item they did not make
            user_name VARCHAR NOT NULL,
            project_id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,          -- run | model | dataset
            target VARCHAR NOT NULL,        -- run id, model name or dataset name
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (user_name, project_id, kind, target)
        );
        CREATE SEQUENCE inbox_id;
        CREATE TABLE inbox (                -- one row per person per event; new kinds need no DDL
            id BIGINT PRIMARY KEY DEFAULT nextval('inbox_id'),
            user_name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,          -- comment | mention | feedback (later: run_failed...)
            project VARCHAR NOT NULL,
            subject_kind VARCHAR NOT NULL,  -- run | model | dataset
            subject VARCHAR NOT NULL,       -- run id, model name, dataset NAME@VERSION
            actor VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            source VARCHAR,                 -- what raised it, to raise it once (feedback rows)
            created_at TIMESTAMP NOT NULL,
            read_at TIMESTAMP
        );
        """,
    ),
    (
        "0120_pipeline_triggers",
        """
        CREATE SEQUENCE pipeline_triggers_id;
        CREATE TABLE pipeline_triggers (    -- what starts a pipeline by itself
            id BIGINT PRIMARY KEY DEFAULT nextval('pipeline_triggers_id'),
            project_id BIGINT NOT NULL,
            pipeline VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,          -- push | dataset | cron | manual
            target VARCHAR,                 -- push: project/module; dataset: its name
            cron VARCHAR,                   -- cron: five fields
            timezone VARCHAR,               -- cron: an IANA zone, e.g. Europe/Paris
            enabled BOOLEAN NOT NULL,
            created_by VARCHAR NOT NULL,    -- runs it starts run as this person
            created_at TIMESTAMP NOT NULL,
            last_fired TIMESTAMP            -- cron: the last time it was due (UTC)
        );
        CREATE TABLE pipeline_guards (      -- per pipeline: debounce, guards, pause state
            project_id BIGINT NOT NULL,
            pipeline VARCHAR NOT NULL,
            debounce_s DOUBLE NOT NULL,     -- events this close together start one run
            max_row_drop DOUBLE,            -- pause when a new input version loses more
            paused_at TIMESTAMP,            -- (a share, 0-1) of rows; NULL: no limit
            paused_reason VARCHAR,
            PRIMARY KEY (project_id, pipeline)
        );
        CREATE SEQUENCE trigger_events_id;
        CREATE TABLE trigger_events (       -- a trigger that fired, waiting out the debounce
            id BIGINT PRIMARY KEY DEFAULT nextval('trigger_events_id'),
            trigger_id BIGINT NOT NULL,
            project_id BIGINT NOT NULL,
            pipeline VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            ref VARCHAR,                    -- the commit sha or dataset@version that fired it
            events INTEGER NOT NULL,        -- how many events this one stands for
            first_at TIMESTAMP NOT NULL,
            due_at TIMESTAMP NOT NULL,
            status VARCHAR NOT NULL,        -- pending | started | skipped | failed
            run_id BIGINT,
            note VARCHAR                    -- why it was skipped or failed
        );
        CREATE TABLE run_origins (          -- what started a run
            run_id BIGINT PRIMARY KEY,
            kind VARCHAR NOT NULL,          -- push | dataset | cron | manual | resume
            trigger_id BIGINT,
            ref VARCHAR,
            events INTEGER NOT NULL,
            fired_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "0121_approvals",
        """
        CREATE SEQUENCE approvals_id;
        CREATE TABLE approvals (            -- a promotion a pipeline asked for, its gates failed
            id BIGINT PRIMARY KEY DEFAULT nextval('approvals_id'),
            project_id BIGINT NOT NULL,
            model_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            alias VARCHAR NOT NULL,
            run_id BIGINT,                  -- the run that registered the version
            checks JSON NOT NULL,           -- the gate results that failed it
            status VARCHAR NOT NULL,        -- pending | approved | rejected
            requested_at TIMESTAMP NOT NULL,
            decided_by VARCHAR,
            decided_at TIMESTAMP,
            comment VARCHAR                 -- the maintainer's reason
        );
        """,
    ),
    (
        "0122_webhooks",
        """
        CREATE SEQUENCE webhooks_id;
        CREATE TABLE webhooks (             -- where a project's events are POSTed
            id BIGINT PRIMARY KEY DEFAULT nextval('webhooks_id'),
            project_id BIGINT NOT NULL,
            url VARCHAR NOT NULL,           -- http(s) only
            events JSON NOT NULL,           -- the event names it wants
            secret VARCHAR NOT NULL,        -- HMAC-SHA256 key of the signature header
            enabled BOOLEAN NOT NULL,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE SEQUENCE webhook_deliveries_id;
        CREATE TABLE webhook_deliveries (   -- one event sent (or being retried) to one webhook
            id BIGINT PRIMARY KEY DEFAULT nextval('webhook_deliveries_id'),
            webhook_id BIGINT NOT NULL,
            event VARCHAR NOT NULL,
            payload JSON NOT NULL,
            status VARCHAR NOT NULL,        -- pending | delivered | failed
            attempts INTEGER NOT NULL,
            next_at TIMESTAMP,              -- pending: when the next attempt is due
            response_status INTEGER,        -- the last attempt's HTTP status
            error VARCHAR,                  -- the last attempt's error
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP
        );
        """,
    ),
    (
        "0070_run_metrics_per_step",
        """
        CREATE TABLE run_metrics_per_step ( -- one row per run, step and metric key
            run_id BIGINT NOT NULL,
            step_name VARCHAR NOT NULL,     -- the step that logged it ('' for a script run)
            key VARCHAR NOT NULL,
            value DOUBLE,                   -- the latest point: last by (ts, step)
            step BIGINT,
            ts TIMESTAMP NOT NULL,
            value_min DOUBLE,
            value_max DOUBLE,
            points BIGINT NOT NULL,
            shared BOOLEAN NOT NULL,        -- another step of the run logs this key too
            PRIMARY KEY (run_id, step_name, key)
        );
        INSERT INTO run_metrics_per_step
        SELECT *, count(*) OVER (PARTITION BY run_id, key) > 1 FROM (
            SELECT run_id, step_name, key, last(value ORDER BY ts, step),
                   last(step ORDER BY ts, step), max(ts), min(value), max(value), count(*)
            FROM metrics GROUP BY run_id, step_name, key
        );
        DROP TABLE run_metrics;
        ALTER TABLE run_metrics_per_step RENAME TO run_metrics;
        """,
    ),
    (
        "0071_model_metrics_from_steps",
        """
        -- A version's metrics are those of the step that trained it and of the evaluators
        -- whose `model` input is that step's output (evaluators win a shared key; a step with
        -- a model output of its own is no evaluator). Versions
        -- registered before took the run's latest value of each key, whichever step logged
        -- it: recompute them from the points; where the run's steps are gone, the metrics
        -- are unknown (metrics_from NULL, metrics emptied).
        ALTER TABLE model_versions ADD COLUMN metrics_from JSON;  -- step names; NULL: unknown
        CREATE TEMP TABLE _version_steps AS
        SELECT v.model_id, v.version, s.run_id, s.name, s.position, s.name = v.step_name AS trained
        FROM model_versions v JOIN steps s ON s.run_id = v.run_id
        WHERE s.name = v.step_name
           OR (starts_with(json_extract_string(s.inputs, '$.model'), v.step_name || '.')
               AND NOT regexp_matches(CAST(s.outputs AS VARCHAR), ': *"model"'));
        CREATE TEMP TABLE _version_metrics AS
        SELECT model_id, version, key,
               last(value ORDER BY trained DESC, position, ts, mstep) AS value
        FROM (SELECT vs.model_id, vs.version, vs.trained, vs.position, m.key, m.value, m.ts,
                     m.step AS mstep
              FROM _version_steps vs
              JOIN metrics m ON m.run_id = vs.run_id AND m.step_name = vs.name)
        GROUP BY model_id, version, key;
        UPDATE model_versions SET metrics = '{}', metrics_from = NULL;
        UPDATE model_versions v SET metrics_from = f.steps FROM (
            SELECT model_id, version, to_json(list(name ORDER BY NOT trained, position)) AS steps
            FROM _version_steps GROUP BY model_id, version
        ) f WHERE f.model_id = v.model_id AND f.version = v.version;
        UPDATE model_versions v SET metrics = m.metrics FROM (
            SELECT model_id, version, json_group_object(key, value) AS metrics
            FROM _version_metrics GROUP BY model_id, version
        ) m WHERE m.model_id = v.model_id AND m.version = v.version;
        DROP TABLE _version_steps;
        DROP TABLE _version_metrics;
        """,
    ),
    (
        "0072_token_step",
        """
        ALTER TABLE tokens ADD COLUMN step_name VARCHAR;  -- a step's run token reports as it only
        """,
    ),
    (
        "0150_step_error",
        """
        -- A step's status says what happened, its error why. A cancelled step's error used to
        -- repeat its status ('cancelled'), and the orchestrator read the status back from that
        -- text; now the error says who cancelled it, as the audit log recorded.
        UPDATE steps SET error = 'cancelled by ' || a.actor
        FROM (SELECT target, last(actor ORDER BY id) AS actor FROM audit
              WHERE action = 'run.cancel' GROUP BY target) a
        WHERE a.target = 'run ' || steps.run_id
          AND steps.status = 'cancelled' AND steps.error = 'cancelled';
        """,
    ),
    (
        "0160_usage",
        """
        -- Device time of each step attempt (local or on a worker) and each project's optional
        -- weekly GPU-hour quota (reef/store/usage.py).
        CREATE SEQUENCE step_usage_id;
        CREATE TABLE step_usage (
            id BIGINT PRIMARY KEY DEFAULT nextval('step_usage_id'),
            step_id BIGINT NOT NULL,
            run_id BIGINT NOT NULL,
            project_id BIGINT NOT NULL,
            pipeline VARCHAR,               -- NULL: a run with no saved pipeline
            step_name VARCHAR NOT NULL,
            person VARCHAR NOT NULL,        -- who started the run
            models VARCHAR,                 -- the model(s) the run registers, comma-separated
            worker VARCHAR,                 -- NULL: ran on the server's box
            gpus INTEGER NOT NULL,
            wall_s DOUBLE NOT NULL,         -- the step process's wall time
            gpu_s DOUBLE NOT NULL,          -- gpus x wall_s
            cpu_s DOUBLE NOT NULL,          -- user + system CPU time of its process tree
            finished_at TIMESTAMP NOT NULL
        );
        CREATE TABLE usage_quotas (
            project_id BIGINT PRIMARY KEY,
            gpu_hours_per_week DOUBLE NOT NULL,
            set_by VARCHAR NOT NULL,
            set_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "0170_annotations",
        """
        -- Labeling (issue 17): a label set per dataset and label column, drafts of labels
        -- (one per row and annotator; published only as one dataset version), who is asked
        -- to label which rows, reviewers' decisions, and whether a project wants review.
        CREATE TABLE label_sets (
            dataset_id BIGINT NOT NULL,
            label_column VARCHAR NOT NULL,
            labels JSON NOT NULL,               -- the classes, in shortcut order
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, label_column)
        );
        CREATE TABLE annotations (
            dataset_id BIGINT NOT NULL,
            label_column VARCHAR NOT NULL,
            row_id UBIGINT NOT NULL,
            author VARCHAR NOT NULL,
            label VARCHAR NOT NULL,
            base_version BIGINT NOT NULL,       -- the dataset version the annotator saw
            labelled_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, label_column, row_id, author)
        );
        CREATE TABLE label_assignments (
            dataset_id BIGINT NOT NULL,
            label_column VARCHAR NOT NULL,
            row_id UBIGINT NOT NULL,
            annotator VARCHAR NOT NULL,
            assigned_by VARCHAR NOT NULL,
            assigned_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, label_column, row_id, annotator)
        );
        CREATE TABLE label_decisions (
            dataset_id BIGINT NOT NULL,
            label_column VARCHAR NOT NULL,
            row_id UBIGINT NOT NULL,
            label VARCHAR NOT NULL,
            reviewer VARCHAR NOT NULL,
            decided_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, label_column, row_id)
        );
        CREATE TABLE labeling_settings (
            project_id BIGINT PRIMARY KEY,
            review_required BOOLEAN NOT NULL
        );
        """,
    ),
    (
        "0150_reupload_model_reuses",
        """
        -- a run step whose model file was byte-identical to the latest version: no new version,
        -- the run links to that one
        CREATE TABLE model_version_reuses (
            model_id BIGINT NOT NULL,
            version INTEGER NOT NULL,
            run_id BIGINT NOT NULL,
            step_name VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, run_id, step_name)
        );
        """,
    ),
]

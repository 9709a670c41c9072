-- The flows schema: the Meter Domain (seed specification) with the
-- reference schema's history triggers, gaps fixed:
--  * SINGLE-element registers receive reads (reference: they got nothing);
--  * reversed registers swap import and export;
--  * meter_prepay_balance records emergency credit too;
--  * the history tables are indexed by (meter, time) for the seed's queries.

CREATE TYPE flows.meter_mode_enum AS ENUM ('active', 'passive');
CREATE TYPE flows.health_check_status AS ENUM ('healthy', 'unhealthy');
CREATE TYPE flows.meter_register_element AS ENUM ('A', 'B', 'SINGLE');
CREATE TYPE flows.meter_register_status_enum AS ENUM ('enabled', 'replaced');
CREATE TYPE flows.register_nature_enum AS ENUM ('heat', 'power', 'solar');
CREATE TYPE flows.meter_metric_run_frequency_enum AS ENUM ('hourly', 'daily', '12hourly');

-- updated_at maintenance. statement_timestamp() (not now()) so that it moves
-- within a transaction. A writer that sets updated_at explicitly (the sync
-- engine, recording when it observed the values) keeps its value.
CREATE FUNCTION flows.updated_at_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := statement_timestamp();
    END IF;
    RETURN NEW;
END $$;

CREATE TABLE flows.escos (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code       text NOT NULL CONSTRAINT escos_code_key UNIQUE
               CONSTRAINT escos_code_format CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$'),
    name       text NOT NULL,
    app_url    text,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flows.escos IS 'Energy service companies: owners of meter fleets and the unit of access control.';

CREATE TABLE flows.meter_registry (
    id                                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    serial                              text NOT NULL CONSTRAINT meter_registry_serial_key UNIQUE
                                        CONSTRAINT meter_registry_serial_format CHECK (serial ~ '^[A-Z]{3}[0-9]{7,13}$'),
    name                                text,
    ip_address                          inet CONSTRAINT meter_registry_ip_address_key UNIQUE,
    port                                integer NOT NULL DEFAULT 8080
                                        CONSTRAINT meter_registry_port_range CHECK (port BETWEEN 1 AND 65535),
    hardware                            text,
    mode                                flows.meter_mode_enum NOT NULL DEFAULT 'active',
    esco                                uuid REFERENCES flows.escos (id),
    single_meter_app                    boolean NOT NULL DEFAULT false,
    daylight_savings_correction_enabled boolean NOT NULL DEFAULT false,
    -- The seed's diagram calls this column daylight_savings_correction; keep
    -- that name readable too.
    daylight_savings_correction         boolean GENERATED ALWAYS AS (daylight_savings_correction_enabled) STORED,
    prepay_enabled                      boolean,
    firmware_version                    text,
    iccid                               text CONSTRAINT meter_registry_iccid_key UNIQUE,
    created_at                          timestamptz NOT NULL DEFAULT now(),
    updated_at                          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flows.meter_registry IS 'Master configuration of every meter.';
COMMENT ON COLUMN flows.meter_registry.serial IS 'Meter serial: three upper-case letters and 7-13 digits, e.g. EML2137580826.';
COMMENT ON COLUMN flows.meter_registry.mode IS 'active: kept in sync by calls to the hardware; passive (digital twin): fed from another database where the same meter is active.';
COMMENT ON COLUMN flows.meter_registry.daylight_savings_correction_enabled IS 'If set, the meter clock runs in UK local time (BST in summer); tariff activation times are converted accordingly.';
CREATE INDEX meter_registry_esco_idx ON flows.meter_registry (esco, mode);

CREATE TRIGGER meter_registry_updated_at BEFORE UPDATE ON flows.meter_registry
    FOR EACH ROW EXECUTE FUNCTION flows.updated_at_now();

-- Tariff JSON must be an object whose money fields are numbers or decimal
-- strings, so the meter_shadows_tariffs view can always cast them.
CREATE FUNCTION flows.tariff_json_valid(t jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT t IS NULL OR (
        jsonb_typeof(t) = 'object'
        AND NOT EXISTS (
            SELECT 1 FROM jsonb_each(t) AS f(key, value)
            WHERE f.key IN ('standing_charge', 'unit_rate_element_a', 'unit_rate_element_b',
                            'prepayment_ecredit_availability', 'prepayment_debt_recovery_rate',
                            'prepayment_emergency_credit')
              AND jsonb_typeof(f.value) <> 'null'
              AND NOT (f.value #>> '{}') ~ '^-?[0-9]+(\.[0-9]+)?$'
        )
        AND (t->>'activation_datetime' IS NULL
             OR t->>'activation_datetime' ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$')
    )
$$;

CREATE TABLE flows.meter_shadows (
    id                        uuid PRIMARY KEY REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    balance                   numeric(14, 5),
    emergency_credit          numeric(14, 5) CONSTRAINT meter_shadows_emergency_credit_nonnegative CHECK (emergency_credit >= 0),
    balance_updated_at        timestamptz,
    tariffs_active            jsonb CONSTRAINT meter_shadows_tariffs_active_shape CHECK (flows.tariff_json_valid(tariffs_active)),
    tariffs_future            jsonb CONSTRAINT meter_shadows_tariffs_future_shape CHECK (flows.tariff_json_valid(tariffs_future)),
    csq                       integer CONSTRAINT meter_shadows_csq_range CHECK (csq BETWEEN 0 AND 31),
    network_operator          smallint CONSTRAINT meter_shadows_network_operator_range CHECK (network_operator BETWEEN 0 AND 7),
    health                    flows.health_check_status,
    health_details            text,
    last_healthy_at           timestamptz,
    clock_time_diff_seconds   integer,
    clock_time_diff_synced_at timestamptz,
    voltage                   numeric(8, 1),
    "3p_voltage_l1"           numeric(8, 1),
    "3p_voltage_l2"           numeric(8, 1),
    "3p_voltage_l3"           numeric(8, 1),
    import_a                  numeric(16, 3),
    import_b                  numeric(16, 3),
    export_a                  numeric(16, 3),
    export_b                  numeric(16, 3),
    backlight                 text,
    load_switch               text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flows.meter_shadows IS 'Reported state of each meter (1:1 with meter_registry), updated by the sync engine. Writing balance, csq, voltage, health or import/export appends history through triggers.';
COMMENT ON COLUMN flows.meter_shadows.voltage IS 'Volts (single phase), one decimal place.';
COMMENT ON COLUMN flows.meter_shadows.import_a IS 'Cumulative element A import, kWh.';

-- One shadow per registry row, created with it.
CREATE FUNCTION flows.meter_registry_insert_shadow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flows.meter_shadows (id) VALUES (NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER meter_registry_insert_shadow AFTER INSERT ON flows.meter_registry
    FOR EACH ROW EXECUTE FUNCTION flows.meter_registry_insert_shadow();

-- BEFORE triggers fire in name order: updated_at first, so the others can
-- use NEW.updated_at as the observation time.
CREATE TRIGGER meter_shadows_10_updated_at BEFORE UPDATE ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.updated_at_now();

CREATE FUNCTION flows.meter_shadows_balance_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance IS DISTINCT FROM OLD.balance THEN
        NEW.balance_updated_at := NEW.updated_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER meter_shadows_20_balance_updated_at BEFORE UPDATE OF balance ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_balance_updated_at();

CREATE FUNCTION flows.meter_shadows_last_healthy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.health = 'healthy' THEN
        NEW.last_healthy_at := NEW.updated_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER meter_shadows_30_last_healthy BEFORE UPDATE OF health ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_last_healthy();

-- History tables. Rows are keyed by (meter, time), the shape of every query
-- on them; these are the only fast-growing tables (see README: partitioning).
CREATE TABLE flows.meter_prepay_balance (
    meter_id         uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp"      timestamptz NOT NULL,
    balance          numeric(14, 5),
    emergency_credit numeric(14, 5),
    PRIMARY KEY (meter_id, "timestamp")
);
CREATE TABLE flows.meter_csq (
    meter_id    uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    csq         integer,
    PRIMARY KEY (meter_id, "timestamp")
);
-- last_online lookups read only the non-NULL rows, newest first.
CREATE INDEX meter_csq_online_idx ON flows.meter_csq (meter_id, "timestamp" DESC) WHERE csq IS NOT NULL;
CREATE TABLE flows.meter_voltage (
    meter_id    uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    voltage     numeric(8, 1),
    PRIMARY KEY (meter_id, "timestamp")
);
CREATE TABLE flows.meter_3p_voltage (
    meter_id    uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    voltage_l1  numeric(8, 1),
    voltage_l2  numeric(8, 1),
    voltage_l3  numeric(8, 1),
    PRIMARY KEY (meter_id, "timestamp")
);
CREATE TABLE flows.meter_health_history (
    meter_id       uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp"    timestamptz NOT NULL,
    health         flows.health_check_status NOT NULL,
    health_details text,
    PRIMARY KEY (meter_id, "timestamp")
);

-- History capture. "AFTER UPDATE OF col" fires whenever the column is in the
-- SET list, changed or not, as in the reference: each sync writes one row
-- per synced value, and csq = NULL rows make offline periods visible. A
-- second write in the same instant replaces the first.
CREATE FUNCTION flows.meter_shadows_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    CASE TG_ARGV[0]
    WHEN 'balance' THEN
        IF NEW.balance IS NOT NULL OR NEW.emergency_credit IS NOT NULL THEN
            INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
            VALUES (NEW.id, NEW.updated_at, NEW.balance, NEW.emergency_credit)
            ON CONFLICT (meter_id, "timestamp") DO UPDATE
                SET balance = EXCLUDED.balance, emergency_credit = EXCLUDED.emergency_credit;
        END IF;
    WHEN 'csq' THEN
        INSERT INTO flows.meter_csq (meter_id, "timestamp", csq)
        VALUES (NEW.id, NEW.updated_at, NEW.csq)
        ON CONFLICT (meter_id, "timestamp") DO UPDATE SET csq = EXCLUDED.csq;
    WHEN 'voltage' THEN
        INSERT INTO flows.meter_voltage (meter_id, "timestamp", voltage)
        VALUES (NEW.id, NEW.updated_at, NEW.voltage)
        ON CONFLICT (meter_id, "timestamp") DO UPDATE SET voltage = EXCLUDED.voltage;
    WHEN '3p_voltage' THEN
        INSERT INTO flows.meter_3p_voltage (meter_id, "timestamp", voltage_l1, voltage_l2, voltage_l3)
        VALUES (NEW.id, NEW.updated_at, NEW."3p_voltage_l1", NEW."3p_voltage_l2", NEW."3p_voltage_l3")
        ON CONFLICT (meter_id, "timestamp") DO UPDATE
            SET voltage_l1 = EXCLUDED.voltage_l1, voltage_l2 = EXCLUDED.voltage_l2, voltage_l3 = EXCLUDED.voltage_l3;
    WHEN 'health' THEN
        IF NEW.health IS NOT NULL THEN
            INSERT INTO flows.meter_health_history (meter_id, "timestamp", health, health_details)
            VALUES (NEW.id, NEW.updated_at, NEW.health, NEW.health_details)
            ON CONFLICT (meter_id, "timestamp") DO UPDATE
                SET health = EXCLUDED.health, health_details = EXCLUDED.health_details;
        END IF;
    END CASE;
    RETURN NULL;
END $$;
CREATE TRIGGER meter_shadows_balance_history AFTER UPDATE OF balance, emergency_credit ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_history('balance');
CREATE TRIGGER meter_shadows_csq_history AFTER UPDATE OF csq ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_history('csq');
CREATE TRIGGER meter_shadows_voltage_history AFTER UPDATE OF voltage ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_history('voltage');
CREATE TRIGGER meter_shadows_3p_voltage_history AFTER UPDATE OF "3p_voltage_l1", "3p_voltage_l2", "3p_voltage_l3" ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_history('3p_voltage');
CREATE TRIGGER meter_shadows_health_history AFTER UPDATE OF health ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_history('health');

-- Registers.
CREATE TABLE flows.meter_registers (
    register_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meter_id           uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    element            flows.meter_register_element NOT NULL,
    status             flows.meter_register_status_enum NOT NULL DEFAULT 'enabled',
    direction_reversed boolean NOT NULL DEFAULT false,
    nature             flows.register_nature_enum,
    start_time         timestamptz,
    end_time           timestamptz,
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT meter_registers_end_after_start CHECK (end_time IS NULL OR start_time IS NULL OR end_time > start_time)
);
COMMENT ON COLUMN flows.meter_registers.direction_reversed IS 'Wired in reverse (e.g. solar export metering): import and export reads are swapped.';
-- One enabled register per element; replaced ones stay for history.
CREATE UNIQUE INDEX meter_registers_one_enabled_per_element
    ON flows.meter_registers (meter_id, element) WHERE status = 'enabled';
-- A meter is either single element or twin element, never both.
CREATE FUNCTION flows.meter_registers_check_layout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'enabled' AND EXISTS (
        SELECT 1 FROM flows.meter_registers r
        WHERE r.meter_id = NEW.meter_id AND r.status = 'enabled' AND r.register_id <> NEW.register_id
          AND ((NEW.element = 'SINGLE') <> (r.element = 'SINGLE'))) THEN
        RAISE EXCEPTION 'meter_registers.element: meter % cannot have both SINGLE and A/B registers enabled', NEW.meter_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'meter_registers_element_layout';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER meter_registers_layout BEFORE INSERT OR UPDATE ON flows.meter_registers
    FOR EACH ROW EXECUTE FUNCTION flows.meter_registers_check_layout();

CREATE TABLE flows.register_import (
    register_id uuid NOT NULL REFERENCES flows.meter_registers (register_id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    read        numeric(16, 3) NOT NULL,
    CONSTRAINT register_import_register_timestamp_key UNIQUE (register_id, "timestamp")
);
CREATE TABLE flows.register_export (
    register_id uuid NOT NULL REFERENCES flows.meter_registers (register_id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    read        numeric(16, 3) NOT NULL,
    CONSTRAINT register_export_register_timestamp_key UNIQUE (register_id, "timestamp")
);
COMMENT ON TABLE flows.register_import IS 'History of cumulative import reads (kWh), written when meter_shadows.import_* is written.';

-- Route a shadow's element read to its register. Element A reads go to the
-- A register, or to the SINGLE register on a single-element meter; element
-- B reads to the B register. A reversed register swaps import and export.
CREATE FUNCTION flows.meter_shadows_register_read() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    elem      text := TG_ARGV[0];        -- 'A' or 'B'
    direction text := TG_ARGV[1];        -- 'import' or 'export'
    val       numeric;
    reg       flows.meter_registers;
BEGIN
    val := CASE elem || direction
        WHEN 'Aimport' THEN NEW.import_a WHEN 'Aexport' THEN NEW.export_a
        WHEN 'Bimport' THEN NEW.import_b ELSE NEW.export_b END;
    IF val IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO reg FROM flows.meter_registers r
    WHERE r.meter_id = NEW.id AND r.status = 'enabled'
      AND (r.element::text = elem OR (elem = 'A' AND r.element = 'SINGLE'))
    ORDER BY (r.element::text = elem) DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;  -- no register configured for this element: nothing to track
    END IF;
    IF reg.direction_reversed THEN
        direction := CASE direction WHEN 'import' THEN 'export' ELSE 'import' END;
    END IF;
    IF direction = 'import' THEN
        INSERT INTO flows.register_import (register_id, "timestamp", read)
        VALUES (reg.register_id, NEW.updated_at, val)
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET read = EXCLUDED.read;
    ELSE
        INSERT INTO flows.register_export (register_id, "timestamp", read)
        VALUES (reg.register_id, NEW.updated_at, val)
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET read = EXCLUDED.read;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER meter_shadows_import_a_update AFTER UPDATE OF import_a ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_register_read('A', 'import');
CREATE TRIGGER meter_shadows_export_a_update AFTER UPDATE OF export_a ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_register_read('A', 'export');
CREATE TRIGGER meter_shadows_import_b_update AFTER UPDATE OF import_b ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_register_read('B', 'import');
CREATE TRIGGER meter_shadows_export_b_update AFTER UPDATE OF export_b ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_register_read('B', 'export');

-- Event log.
CREATE TABLE flows.meter_event_log_type (
    id   integer PRIMARY KEY,
    name text NOT NULL CONSTRAINT meter_event_log_type_name_key UNIQUE
);
CREATE TABLE flows.meter_event_log (
    meter_id    uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    -- No foreign key to meter_event_log_type: meters report types we do not
    -- know yet, and those must still be stored.
    event_type  integer NOT NULL,
    event_set   integer,
    PRIMARY KEY (meter_id, "timestamp", event_type)
);
COMMENT ON TABLE flows.meter_event_log IS 'The event log inside each meter; event_set is an incrementing count per event type.';
INSERT INTO flows.meter_event_log_type (id, name) VALUES
 (1,'BM_OVER_CURRENT'),(2,'BM_FAULTY_CONTACTOR'),(3,'BM_REVERSE_ENERGY_DETECT'),(4,'BM_TERMINAL_COVER_REMOVED'),
 (5,'BM_WATCHDOG_RESET'),(6,'BM_NV_WRITE_EXCEEDED'),(7,'BM_METROLOGY_ERROR'),(8,'BM_MEMORY_ERROR'),
 (9,'BM_MODULE_REMOVED'),(10,'BM_MAGNETIC_FRAUD'),(11,'BM_NON_LEGAL_TIME'),(15,'BM_SPAD_1_WRITE'),
 (16,'BM_SPAD_2_WRITE'),(17,'DSP_ERROR'),(18,'BM_COMMS_ERROR'),(19,'GW_COMMS_ERROR'),
 (20,'PF_TAG_1_ERROR'),(21,'PF_TAG_2_ERROR'),(22,'SPARE_0020'),(23,'SPARE_0040'),
 (24,'SPARE_0080'),(25,'NON_LEGAL_TIME'),(26,'MEMORY_TYPE'),(27,'MEMORY_ERROR'),
 (28,'WATCHDOG_RESET'),(29,'SW_IMAGE_WDOG'),(30,'SW_IMAGE_HES_PREVIOUS'),(31,'SW_IMAGE_APPLIED'),
 (32,'SW_IMAGE_BAD'),(33,'EVENT_POWER_UP'),(34,'EVENT_POWER_DN'),(35,'EVENT_IMAGE_RECEIVED'),
 (36,'EVENT_LOG_RESET_ID'),(37,'EVENT_IMAGE_ERROR'),(38,'DAILY_LOG_SNAPSHOT'),(39,'BILLING_LOG_SNAPSHOT'),
 (40,'DO_BIND_COMMAND'),(41,'DO_UNBIND_COMMAND'),(42,'NEW_IMAGE_APPLIED'),(43,'WATCHDOG_IMAGE_APPLIED'),
 (44,'PREVIOUS_IMAGE_APPLIED'),(48,'CREDIT_TOKEN_APPLIED'),(61,'HES_MSG_PENDING'),(62,'SM_COMMS_ERROR'),
 (63,'WAN_COMMS_ERROR'),(64,'HAN_COMMS_ERROR_GAS'),(65,'HAN_COMMS_ERROR_IHU'),(66,'HAN_API_NOT_RESPONDING'),
 (67,'SPARE_0040_2'),(68,'SPARE_0080_2'),(69,'NON_LEGAL_TIME_2'),(70,'MEMORY_TYPE_2'),
 (71,'MEMORY_ERROR_2'),(72,'WATCHDOG_RESET_2'),(73,'SW_IMAGE_WDOG_2'),(74,'SW_IMAGE_HES_PREVIOUS_2'),
 (75,'SW_IMAGE_APPLIED_2'),(76,'SW_IMAGE_BAD_2'),(77,'EVENT_IMAGE_RECEIVED_2'),(78,'EVENT_LOG_RESET_ID_2'),
 (80,'HAN_DEVICE_JOINED'),(81,'HAN_DEVICE_LEFT'),(83,'INVALID_WAN_MESSAGE'),(84,'EVENT_POWER_UP_2'),
 (85,'EVENT_POWER_DOWN'),(86,'LAST_GASP_SENT_TO_HES'),(87,'ALARM_SENT_TO_HES'),(88,'EVENT_IMAGE_ERROR_2'),
 (89,'GW_DO_UNBIND_COMMAND'),(90,'GW_DO_BIND_COMMAND'),(91,'GW_NEW_IMAGE_APPLIED'),(92,'GW_WATCHDOG_IMAGE_APPLIED'),
 (93,'GW_PREVIOUS_IMAGE_APPLIED'),(94,'GSM_RESET_NO_CONNECTION'),(95,'STATUS_WORD_RESET'),(96,'ZIGBEE_GET_SW_VER_ERR'),
 (97,'ZIGBEE_SEND_MAC_LINK_ERR'),(98,'ZIGBEE_SHUTODWN_ERR'),(99,'ZIGBEE_ACTIVE_IMAGE_ERR'),(104,'LISTENING_SOCKET_ABORTED'),
 (105,'AUTO_ROAMING_DISABLE');

-- Which syncers run how often. name is the syncer's exact (case-sensitive)
-- name, as in the reference.
CREATE TABLE flows.meter_metrics (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CONSTRAINT meter_metrics_name_key UNIQUE,
    notes         text,
    enabled       boolean NOT NULL DEFAULT true,
    run_frequency flows.meter_metric_run_frequency_enum NOT NULL
);
INSERT INTO flows.meter_metrics (name, run_frequency, notes) VALUES
 ('SyncerPrepayBalance', 'hourly', 'credit balance and emergency credit'),
 ('SyncerCsq', 'hourly', 'signal quality; NULL on failure marks offline periods'),
 ('SyncerVoltage', 'hourly', 'instantaneous voltage'),
 ('SyncerReads', 'hourly', 'element A/B import and export registers'),
 ('SyncerClockDiff', 'hourly', 'meter clock drift against server time'),
 ('SyncerTariffsActive', '12hourly', 'active tariff'),
 ('SyncerTariffsFuture', '12hourly', 'future tariff as the meter holds it'),
 ('SyncerEventLog', '12hourly', 'new meter events'),
 ('SyncerBacklight', 'daily', 'backlight setting'),
 ('SyncerLoadSwitch', 'daily', 'load switch setting'),
 ('SyncerHardware', 'daily', 'registry hardware'),
 ('SyncerSerial', 'daily', 'registry serial'),
 ('SyncerFirmwareVersion', 'daily', 'registry firmware version'),
 ('SyncerPrepayEnabled', 'daily', 'registry prepay flag'),
 ('SyncerDaylightSavingsEnabled', 'daily', 'registry daylight-savings-correction flag');

-- Infrastructure: feeders, service heads (connection points) and which
-- meters hang off them.
CREATE TABLE flows.feeder_registry (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CONSTRAINT feeder_registry_name_key UNIQUE,
    esco       uuid REFERENCES flows.escos (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE flows.service_head_registry (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CONSTRAINT service_head_registry_name_key UNIQUE,
    feeder      uuid REFERENCES flows.feeder_registry (id),
    phase       smallint CONSTRAINT service_head_registry_phase_check CHECK (phase IN (1, 2, 3)),
    fuse_rating smallint CONSTRAINT service_head_registry_fuse_rating_check CHECK (fuse_rating > 0),
    type        text CONSTRAINT service_head_registry_type_check CHECK (type IN ('customer_owned', 'network_owned')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE flows.service_head_meter (
    service_head uuid NOT NULL REFERENCES flows.service_head_registry (id) ON DELETE CASCADE,
    meter        uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service_head, meter)
);
COMMENT ON TABLE flows.service_head_meter IS 'Maps meters to connection points (service heads).';

-- Views.

-- The money fields of a tariff JSON as numeric (strings or numbers).
CREATE FUNCTION flows.tariff_amount(t jsonb, key text) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN (t ->> key) ~ '^-?[0-9]+(\.[0-9]+)?$' THEN (t ->> key)::numeric END
$$;

-- The instant a tariff activation datetime denotes for a meter: a value
-- with an offset is an instant; one without is the meter's clock time, UK
-- local when daylight-savings correction is on, UTC otherwise.
CREATE FUNCTION flows.activation_instant(s text, dst_correction boolean) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN s IS NULL THEN NULL
        WHEN s ~ '(Z|[+-]\d{2}:?\d{2})$' THEN s::timestamptz
        WHEN dst_correction THEN s::timestamp AT TIME ZONE 'Europe/London'
        ELSE s::timestamp AT TIME ZONE 'UTC'
    END
$$;

-- Denormalised tariffs. Unlike the reference, no meter is hidden by its
-- hardware: a meter without tariffs (three-phase, never synced) shows NULLs.
-- future_activation_datetime is the meter-clock time (timestamp without time
-- zone, as in the reference); future_activation_at is the same moment as a
-- UTC instant.
CREATE VIEW flows.meter_shadows_tariffs AS
SELECT ms.*,
       mr.serial,
       mr.name,
       mr.esco,
       flows.tariff_amount(ms.tariffs_active, 'standing_charge')                 AS active_standing_charge,
       flows.tariff_amount(ms.tariffs_active, 'unit_rate_element_a')             AS active_unit_rate_a,
       flows.tariff_amount(ms.tariffs_active, 'unit_rate_element_b')             AS active_unit_rate_b,
       flows.tariff_amount(ms.tariffs_active, 'prepayment_ecredit_availability') AS active_ecredit_availability,
       flows.tariff_amount(ms.tariffs_active, 'prepayment_debt_recovery_rate')   AS active_debt_recovery_rate,
       flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit')     AS active_emergency_credit,
       flows.tariff_amount(ms.tariffs_future, 'standing_charge')                 AS future_standing_charge,
       flows.tariff_amount(ms.tariffs_future, 'unit_rate_element_a')             AS future_unit_rate_a,
       flows.tariff_amount(ms.tariffs_future, 'unit_rate_element_b')             AS future_unit_rate_b,
       flows.tariff_amount(ms.tariffs_future, 'prepayment_ecredit_availability') AS future_ecredit_availability,
       flows.tariff_amount(ms.tariffs_future, 'prepayment_debt_recovery_rate')   AS future_debt_recovery_rate,
       flows.tariff_amount(ms.tariffs_future, 'prepayment_emergency_credit')     AS future_emergency_credit,
       flows.activation_instant(ms.tariffs_future ->> 'activation_datetime', mr.daylight_savings_correction_enabled)
           AT TIME ZONE (CASE WHEN mr.daylight_savings_correction_enabled THEN 'Europe/London' ELSE 'UTC' END)
                                                                                 AS future_activation_datetime,
       flows.activation_instant(ms.tariffs_future ->> 'activation_datetime', mr.daylight_savings_correction_enabled)
                                                                                 AS future_activation_at
FROM flows.meter_shadows ms
JOIN flows.meter_registry mr ON mr.id = ms.id;

-- Meters low on credit: the reference threshold of £15. Narrow it further
-- with WHERE balance < x, as the seed does.
CREATE VIEW flows.meters_low_balance AS
SELECT mr.id, mr.serial, mr.name, ms.balance, ms.emergency_credit, ms.balance_updated_at, mr.esco, mr.mode
FROM flows.meter_registry mr
JOIN flows.meter_shadows ms ON ms.id = mr.id
WHERE ms.balance < 15.0
ORDER BY ms.balance;

-- Last time each meter answered: the newest non-NULL csq (a failed sync
-- writes csq = NULL). Meters that never answered have last_online NULL.
CREATE VIEW flows.meter_last_online AS
SELECT mr.id, mr.serial, mr.name, mr.esco, mr.mode,
       (SELECT c."timestamp" FROM flows.meter_csq c
        WHERE c.meter_id = mr.id AND c.csq IS NOT NULL
        ORDER BY c."timestamp" DESC LIMIT 1) AS last_online
FROM flows.meter_registry mr;

-- Meters not heard from for more than 3 hours, ever.
CREATE VIEW flows.meters_offline_all AS
SELECT id, serial, name, last_online, esco, mode
FROM flows.meter_last_online
WHERE last_online < now() - interval '3 hours'
ORDER BY last_online;

-- Meters that went quiet between 3 and 24 hours ago.
CREATE VIEW flows.meters_offline_recently AS
SELECT id, serial, name, last_online, esco, mode
FROM flows.meter_last_online
WHERE last_online < now() - interval '3 hours'
  AND last_online > now() - interval '24 hours'
ORDER BY last_online;

-- Meters whose clock is a minute or more off.
CREATE VIEW flows.meters_clock_drift AS
SELECT ms.clock_time_diff_seconds, mr.serial, mr.name, mr.id, mr.esco, ms.clock_time_diff_synced_at
FROM flows.meter_shadows ms
JOIN flows.meter_registry mr ON mr.id = ms.id
WHERE ms.clock_time_diff_seconds >= 60
ORDER BY ms.clock_time_diff_seconds DESC;

-- The mediator's GetMeters and `emop list`: active meters with signal,
-- health and feeder, optionally for one ESCO code and one feeder name
-- ('null' selects meters on no feeder).
CREATE FUNCTION flows.get_meters_for_cli(esco_filter text DEFAULT NULL, feeder_filter text DEFAULT NULL)
RETURNS TABLE (id uuid, ip_address text, serial text, name text, single_meter_app boolean, esco text,
               csq integer, health text, hardware text, feeder text)
LANGUAGE sql STABLE AS $$
    SELECT mr.id, host(mr.ip_address), mr.serial, mr.name, mr.single_meter_app, e.code,
           ms.csq, ms.health::text, mr.hardware, f.name
    FROM flows.meter_registry mr
    JOIN flows.meter_shadows ms ON ms.id = mr.id
    LEFT JOIN flows.escos e ON e.id = mr.esco
    LEFT JOIN flows.service_head_meter shm ON shm.meter = mr.id
    LEFT JOIN flows.service_head_registry sh ON sh.id = shm.service_head
    LEFT JOIN flows.feeder_registry f ON f.id = sh.feeder
    WHERE (esco_filter IS NULL OR lower(e.code) = lower(esco_filter))
      AND mr.mode = 'active'
      AND (feeder_filter IS NULL OR f.name = feeder_filter OR (feeder_filter = 'null' AND f.id IS NULL))
    ORDER BY mr.name, mr.serial
$$;

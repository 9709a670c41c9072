-- Registers by meter, whatever their status: the interval derivation and
-- completeness look up a meter's registers on every call, and the partial
-- unique index (enabled registers only) does not serve the statements that
-- also see replaced ones (the benchmark found them scanning the table).
CREATE INDEX meter_registers_meter_idx ON flows.meter_registers (meter_id);

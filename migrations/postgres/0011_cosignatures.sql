-- Witnesses' cosignatures of the log's checkpoints (C2SP tlog-cosignature,
-- Ed25519 cosignature/v1; docs/ledger-format.md, section 12). The service
-- sends its checkpoint with a consistency proof to each configured witness
-- (C2SP tlog-witness add-checkpoint) and keeps the signature line each one
-- returns, checked against that witness's key. One row per checkpoint and
-- witness; the served checkpoint is the note of log_checkpoints with these
-- lines appended.
create table log_cosignatures (
    size bigint not null references log_checkpoints (size),
    witness text not null check (length(witness) between 1 and 255),
    -- The cosignature's timestamp, POSIX seconds.
    signed_at bigint not null check (signed_at > 0),
    -- The note signature line, `— <witness> <base64>` and a newline.
    line text not null,
    primary key (size, witness)
);
create index log_cosignatures_witness on log_cosignatures (witness, size);

-- Witnesses' cosignatures of the log's checkpoints (C2SP tlog-cosignature,
-- Ed25519 cosignature/v1; docs/ledger-format.md, section 12); see
-- migrations/postgres/0011_cosignatures.sql.
create table log_cosignatures (
    size integer not null references log_checkpoints (size),
    witness text not null check (length(witness) between 1 and 255),
    signed_at integer not null check (signed_at > 0),
    line text not null,
    primary key (size, witness)
) strict;
create index log_cosignatures_witness on log_cosignatures (witness, size);

//! Criterion benchmarks for the sarlink crates; see `docs/BENCHMARKS.md` for the figures
//! and the commands that produce them. The benchmarks live in `benches/benches/`.

//! Cold starts: how long a fresh runtime takes from its spawn to its first `/next`, as the
//! emulator measures it (`first_next_after_start_us` in its stats). Each start is a new
//! emulator, and cases alternate, as in the timing loop.
use std::path::Path;
use std::time::Duration;

use crate::cases::Case;
use crate::emulator::EmulatorProcess;
use crate::BenchError;

/// How long a runtime gets to reach `/next` (a Python runtime on a loaded machine is slow).
const FIRST_NEXT_LIMIT: Duration = Duration::from_secs(30);

/// `starts` fresh starts of every case, in rounds; returns the samples per case, in `cases`
/// order. `progress(round_done)` runs after each round.
pub fn measure(emulator: &Path, cases: &[Case], starts: usize, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<Duration>>, BenchError> {
    let mut samples = vec![Vec::with_capacity(starts); cases.len()];
    for round in 0..starts {
        for (index, case) in cases.iter().enumerate() {
            samples[index].push(one(emulator, case)?);
        }
        progress(round + 1);
    }
    Ok(samples)
}

fn one(emulator: &Path, case: &Case) -> Result<Duration, BenchError> {
    let process = EmulatorProcess::start(emulator, case)?;
    let mut connection = process.connect()?;
    let cold_start = process.wait_for_cold_start(&mut connection, FIRST_NEXT_LIMIT)?;
    process.stop();
    Ok(cold_start)
}

//! Prints the simulated fairness table: `cargo run -p scheduler --example sched_table [scenario]`.
//! (`vgpu bench sched` is the full command; this is for working on the scheduler alone.)

use scheduler::bench::{find, run_sim, scenarios, table};
use scheduler::{PolicyKind, MS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let list = match std::env::args().nth(1) {
        Some(name) => vec![find(&name)?],
        None => scenarios(),
    };
    let mut rows = Vec::new();
    for s in &list {
        for p in PolicyKind::ALL {
            rows.push(run_sim(s, p, 10_000 * MS)?.0);
        }
    }
    print!("{}", table(&rows));
    Ok(())
}

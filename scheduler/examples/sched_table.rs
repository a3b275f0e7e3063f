//! Prints the simulated fairness table: `cargo run -p scheduler --example sched_table [scenario]`.
//! Set PLOT_DIR to also write plots. (`vgpu bench sched` is the full command; this is for
//! working on the scheduler alone.)

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
            let (row, trace) = run_sim(s, p, 10_000 * MS)?;
            if let Some(dir) = std::env::var_os("PLOT_DIR") {
                let title = format!("{} / {} (sim)", s.name, p);
                scheduler::plot::write(
                    dir.as_ref(),
                    &format!("sim-{}-{p}", s.name),
                    &title,
                    &trace,
                )?;
            }
            rows.push(row);
        }
    }
    print!("{}", table(&rows));
    Ok(())
}

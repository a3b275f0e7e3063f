//! Prints the fairness table: `cargo run --release -p scheduler --example sched_table [scenario]`.
//! Environment: EXECUTOR=vulkan runs on host Vulkan; DURATION (seconds, default 10 simulated,
//! 2 on Vulkan); PLOT_DIR writes plots. (`vgpu bench sched` is the full command; this is for
//! working on the scheduler alone, and builds quickly in release for pick_ns.)

use scheduler::bench::{find, run_sim, run_vulkan, scenarios, table};
use scheduler::executor::vulkan::VulkanExecutor;
use scheduler::PolicyKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let list = match std::env::args().nth(1) {
        Some(name) => vec![find(&name)?],
        None => scenarios(),
    };
    let mut vulkan = match std::env::var("EXECUTOR").as_deref() {
        Ok("vulkan") => Some(VulkanExecutor::new()?),
        _ => None,
    };
    let default_s = if vulkan.is_some() { 2.0 } else { 10.0 };
    let seconds: f64 = std::env::var("DURATION").map_or(Ok(default_s), |d| d.parse())?;
    let duration = (seconds * 1e9) as u64;
    let mut rows = Vec::new();
    for s in &list {
        for p in PolicyKind::ALL {
            let (row, trace) = match vulkan.as_mut() {
                Some(exec) => run_vulkan(exec, s, p, duration)?,
                None => run_sim(s, p, duration)?,
            };
            if let Some(dir) = std::env::var_os("PLOT_DIR") {
                let title = format!("{} / {} ({})", s.name, p, row.executor);
                let stem = format!("{}-{}-{p}", row.executor, s.name);
                scheduler::plot::write(dir.as_ref(), &stem, &title, &trace)?;
            }
            rows.push(row);
        }
    }
    print!("{}", table(&rows));
    Ok(())
}

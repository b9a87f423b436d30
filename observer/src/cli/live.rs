//! `ekuwatch live`: the CLI side of live capture.

use super::*;

pub(super) fn live(a: LiveArgs) -> Result<()> {
    let events: Option<Box<dyn Write + Send>> = match &a.events {
        None => None,
        // Buffered: an event is serialised in many small pieces; live mode flushes per event.
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(std::io::BufWriter::new(std::io::stdout())))
        }
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .with_context(|| format!("cannot write events to {}", p.display()))?,
        ))),
    };
    let file = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let Some(interface) = a.interface.or(file.interface.clone()) else {
        return Err(Usage(
            "no interface: give --interface or `interface` in the configuration file".into(),
        )
        .into());
    };
    let mut local_nets = file.nets().map_err(anyhow::Error::msg)?;
    local_nets.extend(a.local_net);
    let (top_peers, watch) = a.labels.resolve(&file);
    let mut flow = file.flow_config();
    if let Some(o) = &a.observer {
        flow.observer = crate::event::Observer::new(o);
    }
    let web = crate::exporter::Web::load(&file.web).map_err(|e| anyhow::anyhow!("[web]: {e}"))?;
    crate::live::run(crate::live::LiveConfig {
        interface,
        web,
        filter: a.filter.or(file.filter.clone()),
        ports: file.ports.iter().chain(&a.ports).copied().collect(),
        listen: a
            .listen
            .or(file.listen)
            .unwrap_or(([127, 0, 0, 1], 9967).into()),
        local_nets,
        events,
        top_peers,
        watch,
        user: a.user.or(file.user.clone()),
        flow,
        linger: std::time::Duration::from_secs(a.linger),
        backend: if a.backend == "ebpf" {
            crate::live::Backend::Ebpf
        } else {
            crate::live::Backend::Pcap
        },
        ebpf_budget: a.ebpf_budget,
        ebpf_ring_bytes: a.ebpf_ring_mib << 20,
    })?;
    Ok(())
}

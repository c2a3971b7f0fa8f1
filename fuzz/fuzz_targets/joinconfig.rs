//! kubeadm JoinConfiguration / KubejoinConfiguration files (`source::joinconfig`), and their
//! conversion into join settings: never panic, whatever the YAML or JSON.
#![no_main]

use kubejoin::source::joinconfig::parse;
use kubejoin::source::merge::values_from_config_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data, "/etc/kubernetes/join.yaml") {
        Ok(cf) => {
            let _ = cf.ignored().count();
            let _ = values_from_config_file(&cf);
        }
        Err(e) => {
            let _ = (e.to_string(), e.location(), e.kind());
        }
    }
});

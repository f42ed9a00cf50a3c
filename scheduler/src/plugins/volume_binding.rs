//! VolumeBinding: a node must suit the pod's PersistentVolumeClaims (their bound volumes'
//! node affinity; a volume to bind or a class to provision for the unbound
//! `WaitForFirstConsumer` ones). The per-pod state is computed by `crate::volumes`.

use super::{Cycle, Filter};
use crate::framework::NodeInfo;

/// The filter.
pub struct VolumeBinding;

impl Filter for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        c.volumes.map_or(Ok(()), |v| v.filter(n))
    }
}

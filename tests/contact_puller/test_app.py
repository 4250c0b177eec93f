import subprocess
import sys

from tests.processes import ROOT


def test_the_contact_puller_registers_no_message_puller_metrics():
    """Its /metrics shows only its own series: dashboards keyed on the message puller's names
    must not see a second, idle copy."""
    script = (
        "import services.contact_puller.__main__\n"
        "from prometheus_client import REGISTRY\n"
        "print('\\n'.join(sorted(m.name for m in REGISTRY.collect())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert "turnio_contact_puller_lag_seconds" in names
    assert not [n for n in names if n.startswith("turnio_message_puller")]

import pytest
from rich.console import Console

from distillguard.gateway.demo import run_demo


@pytest.mark.slow
def test_gateway_demo_runs_and_records(tmp_path):
    rows = run_demo(tmp_path / "store", Console(file=open(tmp_path / "out.txt", "w")))
    by = {r["what"]: r for r in rows if "what" in r}
    assert by["thinking replayed by another account"]["status"] == 400
    assert by["answer copying its reasoning"]["detail"].startswith("[answer withheld")
    served = int(by["hydra cluster, 40 accounts × 2"]["detail"].split()[0])
    assert served < 80  # each account under its own limit, the cluster was still stopped
    assert rows[-1]["recorded"]["rate_limited"] == 80 - served

"""Operations tests run real processes (dagster dev, seestocks-rank, PostgreSQL): marked slow."""

import pytest

from seestocks_rank.synthetic.demo import generate_demo


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/operations/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def demo_root(tmp_path):
    """A data root with a small generated demo (1,500 offers, 4 retailers)."""
    root = tmp_path / "data"
    generate_demo(root / "demo", n_products=1500, n_retailers=4, seed=3)
    return root

"""CuPy path (placeholder until the CUDA sources land): reports why it cannot run."""


def availability_problem() -> str | None:
    return "the CuPy path is not implemented yet"

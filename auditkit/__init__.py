"""auditkit: audit HTTP inference endpoints the way MLPerf audits them."""

__version__ = "0.1.0"

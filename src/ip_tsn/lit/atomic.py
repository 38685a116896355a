"""Re-export of :mod:`ip_tsn.atomic` (the one atomic-write helper) for older imports."""

from ip_tsn.atomic import atomic_path, temp_name, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["atomic_path", "temp_name", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]

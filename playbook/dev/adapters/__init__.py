"""The former home of ``playbook.adapters`` (kept so that earlier commands still run)."""

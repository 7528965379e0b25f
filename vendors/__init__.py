"""The device catalog: the VendorConfig model and one entry per kind, as data."""

from vendors.catalog import catalog, get_vendor
from vendors.model import VendorConfig

__all__ = ["VendorConfig", "catalog", "get_vendor"]

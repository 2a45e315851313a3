"""All tables, the BFF's and the sandboxes', gathered for Alembic and for tests."""

from __future__ import annotations

from sqlmodel import SQLModel

import datasources.alipay.tables
import datasources.channels.tables
import datasources.credit.tables
import datasources.face.tables
import datasources.his.billing_tables
import datasources.his.inpatient_tables
import datasources.his.tables
import datasources.insurance.tables
import datasources.mobile_insurance.tables
import datasources.store.models
import datasources.wechatpay.tables  # noqa: F401

metadata = SQLModel.metadata

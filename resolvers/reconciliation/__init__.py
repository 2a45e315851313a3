"""Daily three-way reconciliation of payments (seed 002 基础对账管理): each channel's bill, the HIS
ledger and the BFF's own orders and refunds, compared per day and channel; runs kept as a log,
discrepancies with a reason and a suggested action, refunds proposed for operators to approve."""

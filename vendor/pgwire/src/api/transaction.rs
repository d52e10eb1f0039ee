use crate::messages::response::TransactionStatus;

impl TransactionStatus {
    /// Transition to idle (no active transaction) state.
    pub fn to_idle_state(self) -> TransactionStatus {
        TransactionStatus::Idle
    }

    /// Transition to error state, preserving idle state.
    pub fn to_error_state(self) -> TransactionStatus {
        match self {
            TransactionStatus::Idle => TransactionStatus::Idle,
            _ => TransactionStatus::Error,
        }
    }

    /// Transition to in-transaction state. From the failed state too: a handler returns a
    /// transaction start there only for `ROLLBACK TO SAVEPOINT`, which clears the failure
    /// (asofdb's change, vendor/README.md).
    pub fn to_in_transaction_state(self) -> TransactionStatus {
        TransactionStatus::Transaction
    }
}

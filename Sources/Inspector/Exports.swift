/// The model types (Snapshot, records, rates) are part of Inspector's interface.
@_exported import Model

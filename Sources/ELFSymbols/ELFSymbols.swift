// ELFSymbols module.

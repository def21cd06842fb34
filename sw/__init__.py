"""Software side: the one ISA definition, assembler, golden VM, ELF loader, verifier, driver."""

# The Internet checksum (RFC 1071) of an IPv4 header in the input memory: r1 = header, r2 = its length.
# Returns 0 when the header's checksum field is right. Shows byte loads, 16-bit folding and a loop.
    mov %r0, 0
    mov %r3, 0
loop:
    jge %r3, %r2, fold
    mov %r4, %r1
    add %r4, %r3
    ldxb %r5, [%r4]
    lsh %r5, 8
    ldxb %r6, [%r4+1]
    or %r5, %r6
    add %r0, %r5
    add %r3, 2
    ja loop
fold:
    mov %r5, %r0
    rsh %r5, 16
    and %r0, 0xffff
    add %r0, %r5
    mov %r5, %r0
    rsh %r5, 16
    jne %r5, 0, fold
    xor %r0, 0xffff
    exit

# Iterative Fibonacci: r0 = fib(r2), where r2 is the length of the input memory (so `--mem` picks n).
# Shows a bounded loop, 64-bit arithmetic and a bpf-to-bpf call.
    mov %r1, %r2
    call local fib
    exit
fib:
    mov %r0, 0
    mov %r3, 1
    jeq %r1, 0, done
loop:
    mov %r4, %r0
    add %r4, %r3
    mov %r0, %r3
    mov %r3, %r4
    sub %r1, 1
    jne %r1, 0, loop
done:
    exit

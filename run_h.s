	.file	"<string>"
	.section	.rodata.cst8,"aM",@progbits,8
	.p2align	3, 0x0
.LCPI0_0:
	.quad	0xc086200000000000
.LCPI0_1:
	.quad	0x3ff71547652b82fe
.LCPI0_2:
	.quad	0x3fe0000000000000
.LCPI0_3:
	.quad	0xbfe62e42fefa39ef
.LCPI0_4:
	.quad	0x3de6124613a86d09
.LCPI0_5:
	.quad	0x3e21eed8eff8d898
.LCPI0_6:
	.quad	0x3e5ae64567f544e4
.LCPI0_7:
	.quad	0x3e927e4fb7789f5c
.LCPI0_8:
	.quad	0x3ec71de3a556c734
.LCPI0_9:
	.quad	0x3efa01a01a01a01a
.LCPI0_10:
	.quad	0x3f2a01a01a01a01a
.LCPI0_11:
	.quad	0x3f56c16c16c16c17
.LCPI0_12:
	.quad	0x3f81111111111111
.LCPI0_13:
	.quad	0x3fa5555555555555
.LCPI0_14:
	.quad	0x3fc5555555555555
.LCPI0_15:
	.quad	0x3ff0000000000000
.LCPI0_16:
	.quad	0x4338000000000000
.LCPI0_17:
	.quad	0x3fe62e42fefa39ef
	.section	.ltext,"axl",@progbits
	.globl	_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx
	.p2align	4
	.type	_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx,@function
_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx:
	.cfi_startproc
	pushq	%rbp
	.cfi_def_cfa_offset 16
	pushq	%r15
	.cfi_def_cfa_offset 24
	pushq	%r14
	.cfi_def_cfa_offset 32
	pushq	%r13
	.cfi_def_cfa_offset 40
	pushq	%r12
	.cfi_def_cfa_offset 48
	pushq	%rbx
	.cfi_def_cfa_offset 56
	subq	$24, %rsp
	.cfi_def_cfa_offset 80
	.cfi_offset %rbx, -56
	.cfi_offset %r12, -48
	.cfi_offset %r13, -40
	.cfi_offset %r14, -32
	.cfi_offset %r15, -24
	.cfi_offset %rbp, -16
	movq	160(%rsp), %r8
	movq	88(%rsp), %rbp
	movq	%rdi, -8(%rsp)
	testq	%r8, %r8
	setle	%al
	testq	%rbp, %rbp
	setle	%cl
	orb	%al, %cl
	je	.LBB0_1
.LBB0_12:
	movq	-8(%rsp), %rax
	movq	$0, (%rax)
	xorl	%eax, %eax
	addq	$24, %rsp
	.cfi_def_cfa_offset 56
	popq	%rbx
	.cfi_def_cfa_offset 48
	popq	%r12
	.cfi_def_cfa_offset 40
	popq	%r13
	.cfi_def_cfa_offset 32
	popq	%r14
	.cfi_def_cfa_offset 24
	popq	%r15
	.cfi_def_cfa_offset 16
	popq	%rbp
	.cfi_def_cfa_offset 8
	vzeroupper
	retq
.LBB0_1:
	.cfi_def_cfa_offset 80
	movq	136(%rsp), %rdx
	movq	80(%rsp), %rsi
	movabsq	$.LCPI0_6, %r10
	movabsq	$.LCPI0_7, %r11
	movabsq	$.LCPI0_8, %r12
	movabsq	$.LCPI0_9, %rbx
	movabsq	$.LCPI0_10, %r15
	movabsq	$.LCPI0_11, %r9
	movabsq	$.LCPI0_12, %r14
	movabsq	$.LCPI0_0, %rdi
	vmovsd	(%rdi), %xmm5
	movq	%rdx, %rax
	subq	%rsi, %rax
	cmpq	$4, %rbp
	setb	%cl
	cmpq	$32, %rax
	setb	%al
	orb	%cl, %al
	movabsq	$9223372036854775804, %rcx
	movb	%al, -121(%rsp)
	movabsq	$.LCPI0_1, %rax
	andq	%rbp, %rcx
	vmovsd	%xmm5, -120(%rsp)
	vmovsd	(%rax), %xmm7
	movabsq	$.LCPI0_17, %rax
	movq	%rcx, (%rsp)
	movabsq	$.LCPI0_2, %rcx
	vmovsd	(%rax), %xmm1
	movabsq	$.LCPI0_5, %rax
	vmovq	(%rcx), %xmm0
	vmovsd	(%rax), %xmm10
	movabsq	$.LCPI0_4, %rax
	vmovsd	(%rax), %xmm2
	vmovsd	%xmm7, -112(%rsp)
	vmovsd	%xmm1, 8(%rsp)
	vmovsd	(%r15), %xmm1
	vmovq	%xmm0, -64(%rsp)
	vmovsd	%xmm10, -96(%rsp)
	vmovsd	%xmm2, -104(%rsp)
	vmovsd	(%r10), %xmm2
	vmovsd	%xmm1, -56(%rsp)
	vmovsd	(%r14), %xmm1
	vmovsd	%xmm2, -16(%rsp)
	vmovsd	(%r11), %xmm2
	vmovsd	%xmm1, -80(%rsp)
	vmovsd	-80(%rsp), %xmm11
	vmovsd	%xmm2, -32(%rsp)
	vmovsd	(%r12), %xmm2
	vmovsd	%xmm2, -40(%rsp)
	vmovsd	(%rbx), %xmm2
	vmovsd	%xmm2, -48(%rsp)
	vmovsd	(%r9), %xmm2
	movabsq	$.LCPI0_13, %r9
	vmovsd	-48(%rsp), %xmm12
	vmovsd	%xmm2, -72(%rsp)
	vmovsd	(%r9), %xmm2
	movabsq	$.LCPI0_14, %r9
	vmovsd	(%r9), %xmm1
	vmovsd	-72(%rsp), %xmm3
	vmovsd	%xmm2, -88(%rsp)
	vmovsd	-88(%rsp), %xmm9
	vmovsd	%xmm1, -24(%rsp)
	jmp	.LBB0_2
	.p2align	4
.LBB0_11:
	movq	16(%rsp), %r8
	subq	$1, %r8
	jbe	.LBB0_12
.LBB0_2:
	cmpb	$0, -121(%rsp)
	movq	%r8, 16(%rsp)
	je	.LBB0_4
	xorl	%r9d, %r9d
	jmp	.LBB0_7
	.p2align	4
.LBB0_4:
	movq	%r14, %r8
	movq	%rdx, %r14
	movq	%rsi, %rdx
	movq	(%rsp), %rsi
	movq	%rbx, %rbp
	movq	%r11, %rbx
	movq	%r10, %r11
	movq	%rax, %r10
	movabsq	$.LCPI0_5, %rax
	movabsq	$.LCPI0_1, %rcx
	movabsq	$.LCPI0_15, %rdi
	xorl	%r9d, %r9d
	.p2align	4
.LBB0_5:
	movabsq	$.LCPI0_0, %r13
	vmovupd	(%rdx,%r9,8), %ymm15
	vbroadcastsd	(%rcx), %ymm4
	vbroadcastsd	(%r10), %ymm0
	vbroadcastsd	(%rax), %ymm8
	vbroadcastsd	(%r11), %ymm1
	vbroadcastsd	(%r12), %ymm10
	vbroadcastsd	(%r13), %ymm2
	movabsq	$.LCPI0_2, %r13
	vbroadcastsd	(%r13), %ymm5
	movabsq	$.LCPI0_3, %r13
	vbroadcastsd	(%r13), %ymm6
	movabsq	$.LCPI0_11, %r13
	vmaxpd	%ymm15, %ymm2, %ymm7
	vcmpnltpd	%ymm2, %ymm15, %ymm2
	vfmadd213pd	%ymm5, %ymm7, %ymm4
	vroundpd	$9, %ymm4, %ymm4
	vfmadd213pd	%ymm7, %ymm4, %ymm6
	vfmadd231pd	%ymm0, %ymm6, %ymm8
	vbroadcastsd	(%rbx), %ymm0
	vfmadd231pd	%ymm8, %ymm6, %ymm1
	vfmadd231pd	%ymm1, %ymm6, %ymm0
	vbroadcastsd	(%rbp), %ymm1
	vfmadd231pd	%ymm0, %ymm6, %ymm10
	vbroadcastsd	(%r15), %ymm0
	vfmadd231pd	%ymm10, %ymm6, %ymm1
	vbroadcastsd	(%r13), %ymm10
	movabsq	$.LCPI0_13, %r13
	vfmadd231pd	%ymm1, %ymm6, %ymm0
	vbroadcastsd	(%r8), %ymm1
	vfmadd231pd	%ymm0, %ymm6, %ymm10
	vbroadcastsd	(%r13), %ymm0
	movabsq	$.LCPI0_14, %r13
	vfmadd231pd	%ymm10, %ymm6, %ymm1
	vbroadcastsd	(%r13), %ymm10
	movabsq	$.LCPI0_16, %r13
	vfmadd231pd	%ymm1, %ymm6, %ymm0
	vbroadcastsd	(%r13), %ymm1
	vfmadd231pd	%ymm0, %ymm6, %ymm10
	vbroadcastsd	(%rdi), %ymm0
	vfmadd213pd	%ymm5, %ymm6, %ymm10
	vaddpd	%ymm1, %ymm4, %ymm4
	vpsllq	$52, %ymm4, %ymm4
	vfmadd213pd	%ymm0, %ymm6, %ymm10
	vfmadd213pd	%ymm0, %ymm6, %ymm10
	vpbroadcastq	(%rdi), %ymm0
	vpaddq	%ymm0, %ymm4, %ymm4
	vmulpd	%ymm4, %ymm10, %ymm4
	vandpd	%ymm4, %ymm2, %ymm2
	vmovupd	%ymm2, (%r14,%r9,8)
	addq	$4, %r9
	cmpq	%r9, %rsi
	jne	.LBB0_5
	vmovsd	-112(%rsp), %xmm7
	vmovsd	-96(%rsp), %xmm10
	vmovsd	-120(%rsp), %xmm5
	movq	88(%rsp), %r13
	movq	%r10, %rax
	movq	%r11, %r10
	movq	%rbx, %r11
	movq	%rbp, %rbx
	movq	%rsi, %r9
	movq	%r13, %rbp
	cmpq	%rsi, %r13
	movq	%rdx, %rsi
	movq	%r14, %rdx
	movq	%r8, %r14
	je	.LBB0_11
.LBB0_7:
	movq	%rbp, %r8
	movq	%r9, %rbp
	orq	$1, %rbp
	testb	$1, %r8b
	je	.LBB0_9
	vmovsd	(%rsi,%r9,8), %xmm2
	vmovsd	-120(%rsp), %xmm0
	movabsq	$.LCPI0_3, %rcx
	movabsq	$.LCPI0_15, %rdi
	movabsq	$4607182418800017408, %r13
	vmovsd	(%rdi), %xmm1
	vmaxsd	%xmm2, %xmm0, %xmm5
	vmovsd	-64(%rsp), %xmm0
	vmovapd	%xmm0, %xmm4
	vfmadd231sd	%xmm7, %xmm5, %xmm4
	vroundsd	$9, %xmm4, %xmm4, %xmm6
	vfmadd231sd	(%rcx), %xmm6, %xmm5
	vmovsd	-104(%rsp), %xmm4
	movabsq	$.LCPI0_16, %rcx
	vfmadd213sd	%xmm10, %xmm5, %xmm4
	vfmadd213sd	-16(%rsp), %xmm5, %xmm4
	vfmadd213sd	-32(%rsp), %xmm5, %xmm4
	vfmadd213sd	-40(%rsp), %xmm5, %xmm4
	vfmadd213sd	-48(%rsp), %xmm5, %xmm4
	vfmadd213sd	-56(%rsp), %xmm5, %xmm4
	vfmadd213sd	-72(%rsp), %xmm5, %xmm4
	vfmadd213sd	-80(%rsp), %xmm5, %xmm4
	vfmadd213sd	-88(%rsp), %xmm5, %xmm4
	vfmadd213sd	-24(%rsp), %xmm5, %xmm4
	vfmadd213sd	%xmm0, %xmm5, %xmm4
	vfmadd213sd	%xmm1, %xmm5, %xmm4
	vfmadd213sd	%xmm1, %xmm5, %xmm4
	vaddsd	(%rcx), %xmm6, %xmm5
	vmovq	%xmm5, %r8
	shlq	$52, %r8
	addq	%r13, %r8
	vmovq	%r8, %xmm5
	vmulsd	%xmm5, %xmm4, %xmm4
	vmovsd	-120(%rsp), %xmm5
	vcmpltsd	%xmm5, %xmm2, %xmm2
	vandnpd	%xmm4, %xmm2, %xmm2
	vmovlpd	%xmm2, (%rdx,%r9,8)
	movq	%rbp, %r9
.LBB0_9:
	vmovsd	-32(%rsp), %xmm13
	vmovsd	-40(%rsp), %xmm14
	vmovsd	-56(%rsp), %xmm0
	vmovsd	8(%rsp), %xmm8
	vmovsd	-64(%rsp), %xmm15
	movq	88(%rsp), %r8
	movabsq	$4607182418800017408, %r13
	movabsq	$.LCPI0_15, %rdi
	movabsq	$.LCPI0_16, %rcx
	cmpq	%rbp, %r8
	movq	%r8, %rbp
	je	.LBB0_11
	.p2align	4
.LBB0_10:
	vmovsd	(%rsi,%r9,8), %xmm4
	vmovsd	-112(%rsp), %xmm2
	vmovapd	%xmm14, %xmm1
	vmovapd	%xmm13, %xmm14
	vmovsd	-16(%rsp), %xmm13
	vmaxsd	%xmm4, %xmm5, %xmm6
	vmovsd	-104(%rsp), %xmm5
	vcmpltsd	-120(%rsp), %xmm4, %xmm4
	vfmadd213sd	%xmm15, %xmm6, %xmm2
	vroundsd	$9, %xmm2, %xmm2, %xmm7
	vmovapd	%xmm15, %xmm2
	vmovsd	-24(%rsp), %xmm15
	vfnmadd231sd	%xmm8, %xmm7, %xmm6
	vfmadd213sd	%xmm10, %xmm6, %xmm5
	vmovapd	%xmm0, %xmm10
	vfmadd213sd	%xmm13, %xmm6, %xmm5
	vfmadd213sd	%xmm14, %xmm6, %xmm5
	vfmadd213sd	%xmm1, %xmm6, %xmm5
	vfmadd213sd	%xmm12, %xmm6, %xmm5
	vfmadd213sd	%xmm0, %xmm6, %xmm5
	vmovsd	(%rdi), %xmm0
	vfmadd213sd	%xmm3, %xmm6, %xmm5
	vfmadd213sd	%xmm11, %xmm6, %xmm5
	vfmadd213sd	%xmm9, %xmm6, %xmm5
	vfmadd213sd	%xmm15, %xmm6, %xmm5
	vfmadd213sd	%xmm2, %xmm6, %xmm5
	vfmadd213sd	%xmm0, %xmm6, %xmm5
	vfmadd213sd	%xmm0, %xmm6, %xmm5
	vaddsd	(%rcx), %xmm7, %xmm6
	vmovq	%xmm6, %r8
	shlq	$52, %r8
	addq	%r13, %r8
	vmovq	%r8, %xmm6
	vmulsd	%xmm6, %xmm5, %xmm5
	vandnpd	%xmm5, %xmm4, %xmm4
	vmovsd	-120(%rsp), %xmm5
	vmovlpd	%xmm4, (%rdx,%r9,8)
	vmovsd	8(%rsi,%r9,8), %xmm4
	vmaxsd	%xmm4, %xmm5, %xmm6
	vmovsd	-112(%rsp), %xmm5
	vfmadd213sd	%xmm2, %xmm6, %xmm5
	vroundsd	$9, %xmm5, %xmm5, %xmm7
	vmovsd	-104(%rsp), %xmm5
	vmovapd	%xmm10, %xmm0
	vfnmadd231sd	%xmm8, %xmm7, %xmm6
	vfmadd213sd	-96(%rsp), %xmm6, %xmm5
	vfmadd213sd	%xmm13, %xmm6, %xmm5
	vmovapd	%xmm14, %xmm13
	vmovapd	%xmm1, %xmm14
	vfmadd213sd	%xmm13, %xmm6, %xmm5
	vfmadd213sd	%xmm1, %xmm6, %xmm5
	vfmadd213sd	%xmm12, %xmm6, %xmm5
	vfmadd213sd	%xmm10, %xmm6, %xmm5
	vmovsd	-96(%rsp), %xmm10
	vfmadd213sd	%xmm3, %xmm6, %xmm5
	vfmadd213sd	%xmm11, %xmm6, %xmm5
	vfmadd213sd	%xmm9, %xmm6, %xmm5
	vfmadd213sd	%xmm15, %xmm6, %xmm5
	vmovapd	%xmm2, %xmm15
	vfmadd213sd	%xmm2, %xmm6, %xmm5
	vmovsd	(%rdi), %xmm2
	vfmadd213sd	%xmm2, %xmm6, %xmm5
	vfmadd213sd	%xmm2, %xmm6, %xmm5
	vaddsd	(%rcx), %xmm7, %xmm2
	vmovsd	-112(%rsp), %xmm7
	vmovq	%xmm2, %r8
	shlq	$52, %r8
	addq	%r13, %r8
	vmovq	%r8, %xmm2
	vmulsd	%xmm2, %xmm5, %xmm2
	vmovsd	-120(%rsp), %xmm5
	vcmpltsd	%xmm5, %xmm4, %xmm4
	vandnpd	%xmm2, %xmm4, %xmm2
	vmovlpd	%xmm2, 8(%rdx,%r9,8)
	addq	$2, %r9
	cmpq	%r9, %rbp
	jne	.LBB0_10
	jmp	.LBB0_11
.Lfunc_end0:
	.size	_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx, .Lfunc_end0-_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx
	.cfi_endproc

	.globl	_ZN7cpython8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx
	.p2align	4
	.type	_ZN7cpython8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx,@function
_ZN7cpython8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx:
	.cfi_startproc
	pushq	%rbp
	.cfi_def_cfa_offset 16
	pushq	%r15
	.cfi_def_cfa_offset 24
	pushq	%r14
	.cfi_def_cfa_offset 32
	pushq	%r13
	.cfi_def_cfa_offset 40
	pushq	%r12
	.cfi_def_cfa_offset 48
	pushq	%rbx
	.cfi_def_cfa_offset 56
	subq	$248, %rsp
	.cfi_def_cfa_offset 304
	.cfi_offset %rbx, -56
	.cfi_offset %r12, -48
	.cfi_offset %r13, -40
	.cfi_offset %r14, -32
	.cfi_offset %r15, -24
	.cfi_offset %rbp, -16
	movq	%rsi, %rdi
	leaq	104(%rsp), %rax
	movabsq	$.const.run_h, %rsi
	movabsq	$PyArg_UnpackTuple, %r10
	leaq	120(%rsp), %r8
	leaq	112(%rsp), %r9
	movl	$3, %edx
	movl	$3, %ecx
	xorl	%ebx, %ebx
	movq	%rax, (%rsp)
	xorl	%eax, %eax
	callq	*%r10
	testl	%eax, %eax
	je	.LBB1_10
	movabsq	$_ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx, %rax
	cmpq	$0, (%rax)
	je	.LBB1_15
	movq	120(%rsp), %rdi
	movabsq	$NRT_adapt_ndarray_from_python, %r14
	leaq	128(%rsp), %rsi
	vxorps	%xmm0, %xmm0, %xmm0
	vmovups	%ymm0, 128(%rsp)
	vmovups	%ymm0, 152(%rsp)
	vzeroupper
	callq	*%r14
	testl	%eax, %eax
	jne	.LBB1_16
	cmpq	$8, 152(%rsp)
	jne	.LBB1_16
	movq	112(%rsp), %rdi
	movq	128(%rsp), %r15
	movq	160(%rsp), %rbp
	movq	168(%rsp), %rbx
	leaq	192(%rsp), %rsi
	vxorps	%xmm0, %xmm0, %xmm0
	vmovups	%ymm0, 192(%rsp)
	vmovups	%ymm0, 216(%rsp)
	vzeroupper
	callq	*%r14
	testl	%eax, %eax
	jne	.LBB1_17
	cmpq	$8, 216(%rsp)
	jne	.LBB1_17
	movq	104(%rsp), %rdi
	movq	192(%rsp), %r14
	movq	224(%rsp), %r13
	movabsq	$PyNumber_Long, %rax
	movq	%r15, 96(%rsp)
	callq	*%rax
	testq	%rax, %rax
	je	.LBB1_18
	movq	%rax, %r12
	movabsq	$PyLong_AsLongLong, %rax
	movq	%r12, %rdi
	callq	*%rax
	movq	%rax, %r15
	movabsq	$Py_DecRef, %rax
	movq	%r12, %rdi
	callq	*%rax
	movabsq	$PyErr_Occurred, %rax
	callq	*%rax
	testq	%rax, %rax
	jne	.LBB1_19
.LBB1_8:
	movq	%rbx, 8(%rsp)
	movq	96(%rsp), %rbx
	movabsq	$_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx, %rax
	leaq	184(%rsp), %rdi
	movq	%r15, 80(%rsp)
	movq	%r13, 56(%rsp)
	movq	%r14, 24(%rsp)
	movq	%rbp, (%rsp)
	movq	%rbx, %rdx
	callq	*%rax
	movabsq	$NRT_decref, %r15
	movq	%rbx, %rdi
	movl	%eax, %ebp
	callq	*%r15
	movq	%r14, %rdi
	callq	*%r15
	testl	%ebp, %ebp
	jne	.LBB1_11
	movabsq	$_Py_NoneStruct, %rbx
	movabsq	$Py_IncRef, %rax
	movq	%rbx, %rdi
	callq	*%rax
.LBB1_10:
	movq	%rbx, %rax
	addq	$248, %rsp
	.cfi_def_cfa_offset 56
	popq	%rbx
	.cfi_def_cfa_offset 48
	popq	%r12
	.cfi_def_cfa_offset 40
	popq	%r13
	.cfi_def_cfa_offset 32
	popq	%r14
	.cfi_def_cfa_offset 24
	popq	%r15
	.cfi_def_cfa_offset 16
	popq	%rbp
	.cfi_def_cfa_offset 8
	retq
.LBB1_11:
	.cfi_def_cfa_offset 304
	jg	.LBB1_25
	cmpl	$-1, %ebp
	je	.LBB1_22
	cmpl	$-3, %ebp
	jne	.LBB1_23
	movabsq	$PyExc_StopIteration, %rdi
	movabsq	$PyErr_SetNone, %rax
	jmp	.LBB1_21
.LBB1_15:
	movabsq	$PyExc_RuntimeError, %rdi
	movabsq	$".const.missing Environment: _ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx", %rsi
	jmp	.LBB1_24
.LBB1_16:
	movabsq	$PyExc_TypeError, %rdi
	movabsq	$".const.can't unbox array from PyObject into native value.  The object maybe of a different type", %rsi
	jmp	.LBB1_24
.LBB1_17:
	movabsq	$PyExc_TypeError, %rdi
	movabsq	$".const.can't unbox array from PyObject into native value.  The object maybe of a different type", %rsi
	movabsq	$PyErr_SetString, %rax
	callq	*%rax
	jmp	.LBB1_20
.LBB1_18:
	xorl	%r15d, %r15d
	movabsq	$PyErr_Occurred, %rax
	callq	*%rax
	testq	%rax, %rax
	je	.LBB1_8
.LBB1_19:
	movabsq	$NRT_decref, %rax
	movq	%r14, %rdi
	callq	*%rax
	movq	96(%rsp), %r15
.LBB1_20:
	movabsq	$NRT_decref, %rax
	movq	%r15, %rdi
.LBB1_21:
	callq	*%rax
.LBB1_22:
	xorl	%ebx, %ebx
	jmp	.LBB1_10
.LBB1_23:
	movabsq	$PyExc_SystemError, %rdi
	movabsq	$".const.unknown error when calling native function", %rsi
.LBB1_24:
	movabsq	$PyErr_SetString, %rax
	callq	*%rax
	xorl	%ebx, %ebx
	jmp	.LBB1_10
.LBB1_25:
	movabsq	$PyErr_Clear, %rax
	callq	*%rax
.Lfunc_end1:
	.size	_ZN7cpython8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx, .Lfunc_end1-_ZN7cpython8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx
	.cfi_endproc

	.globl	cfunc._ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx
	.p2align	4
	.type	cfunc._ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx,@function
cfunc._ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx:
	.cfi_startproc
	pushq	%r14
	.cfi_def_cfa_offset 16
	pushq	%rbx
	.cfi_def_cfa_offset 24
	subq	$104, %rsp
	.cfi_def_cfa_offset 128
	.cfi_offset %rbx, -24
	.cfi_offset %r14, -16
	movq	136(%rsp), %rax
	movq	168(%rsp), %rcx
	movq	192(%rsp), %rsi
	movq	%rdi, %rdx
	leaq	96(%rsp), %rdi
	movq	$0, 96(%rsp)
	movq	%r9, 8(%rsp)
	movq	%r8, (%rsp)
	movq	%rax, 24(%rsp)
	movabsq	$_ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx, %rax
	movq	%rsi, 80(%rsp)
	movq	%rcx, 56(%rsp)
	callq	*%rax
	movq	96(%rsp), %rcx
	movl	$0, 92(%rsp)
	testl	%eax, %eax
	jne	.LBB2_1
.LBB2_5:
	movq	%rcx, %rax
	addq	$104, %rsp
	.cfi_def_cfa_offset 24
	popq	%rbx
	.cfi_def_cfa_offset 16
	popq	%r14
	.cfi_def_cfa_offset 8
	retq
.LBB2_1:
	.cfi_def_cfa_offset 128
	movq	%rcx, %r14
	movabsq	$numba_gil_ensure, %rcx
	leaq	92(%rsp), %rdi
	movl	%eax, %ebx
	callq	*%rcx
	testl	%ebx, %ebx
	jg	.LBB2_2
	movl	%ebx, %eax
	cmpl	$-1, %ebx
	je	.LBB2_4
	cmpl	$-3, %eax
	jne	.LBB2_3
	movabsq	$PyExc_StopIteration, %rdi
	movabsq	$PyErr_SetNone, %rax
	callq	*%rax
	jmp	.LBB2_4
.LBB2_3:
	movabsq	$PyExc_SystemError, %rdi
	movabsq	$".const.unknown error when calling native function.2", %rsi
	movabsq	$PyErr_SetString, %rax
	callq	*%rax
.LBB2_4:
	movabsq	$".const.<numba.core.cpu.CPUContext>", %rdi
	movabsq	$PyUnicode_FromString, %rax
	callq	*%rax
	movq	%rax, %rbx
	movabsq	$PyErr_WriteUnraisable, %rax
	movq	%rbx, %rdi
	callq	*%rax
	movabsq	$Py_DecRef, %rax
	movq	%rbx, %rdi
	callq	*%rax
	movabsq	$numba_gil_release, %rax
	leaq	92(%rsp), %rdi
	callq	*%rax
	movq	%r14, %rcx
	jmp	.LBB2_5
.LBB2_2:
	movabsq	$PyErr_Clear, %rax
	callq	*%rax
.Lfunc_end2:
	.size	cfunc._ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx, .Lfunc_end2-cfunc._ZN8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx
	.cfi_endproc

	.weak	NRT_incref
	.p2align	4
	.type	NRT_incref,@function
NRT_incref:
	testq	%rdi, %rdi
	je	.LBB3_2
	lock		incq	(%rdi)
.LBB3_2:
	retq
.Lfunc_end3:
	.size	NRT_incref, .Lfunc_end3-NRT_incref

	.weak	NRT_decref
	.p2align	4
	.type	NRT_decref,@function
NRT_decref:
	.cfi_startproc
	testq	%rdi, %rdi
	je	.LBB4_2
	#MEMBARRIER
	lock		decq	(%rdi)
	je	.LBB4_3
.LBB4_2:
	retq
.LBB4_3:
	movabsq	$NRT_MemInfo_call_dtor, %rax
	#MEMBARRIER
	jmpq	*%rax
.Lfunc_end4:
	.size	NRT_decref, .Lfunc_end4-NRT_decref
	.cfi_endproc

	.type	.const.run_h,@object
	.section	.lrodata,"al",@progbits
.const.run_h:
	.asciz	"run_h"
	.size	.const.run_h, 6

	.type	_ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx,@object
	.comm	_ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx,8,8
	.type	".const.missing Environment: _ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx",@object
	.p2align	4, 0x0
".const.missing Environment: _ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx":
	.asciz	"missing Environment: _ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx"
	.size	".const.missing Environment: _ZN08NumbaEnv8__main__5run_hB2v1B114c8tJTIeFIjxB2IKSgI4CrvSCKg1MMbCQQPKkLTj8gEEF9aYtuj_2br1fOKq9R1FNSLgKmqOD8ZxExMywNRyfl5JUWJySVgoaLkAvVaTWB8FEHs1QQAE5ArrayIdLi1E1C7mutable7alignedE5ArrayIdLi1E1C7mutable7alignedEx", 236

	.type	".const.can't unbox array from PyObject into native value.  The object maybe of a different type",@object
	.p2align	4, 0x0
".const.can't unbox array from PyObject into native value.  The object maybe of a different type":
	.asciz	"can't unbox array from PyObject into native value.  The object maybe of a different type"
	.size	".const.can't unbox array from PyObject into native value.  The object maybe of a different type", 89

	.type	".const.unknown error when calling native function",@object
	.p2align	4, 0x0
".const.unknown error when calling native function":
	.asciz	"unknown error when calling native function"
	.size	".const.unknown error when calling native function", 43

	.type	".const.unknown error when calling native function.2",@object
	.p2align	4, 0x0
".const.unknown error when calling native function.2":
	.asciz	"unknown error when calling native function"
	.size	".const.unknown error when calling native function.2", 43

	.type	".const.<numba.core.cpu.CPUContext>",@object
	.p2align	4, 0x0
".const.<numba.core.cpu.CPUContext>":
	.asciz	"<numba.core.cpu.CPUContext>"
	.size	".const.<numba.core.cpu.CPUContext>", 28

	.type	_ZN08NumbaEnv5numba7cpython8builtins6ol_max12_3clocals_3e4implB2v3B112c8tJTIeFIjxB2IKSgI4CrvQCk0Z4yRYcWsCAgXrKFt1X1ep5xVXqOgrqRcA0VJyfDGImpuWBqOT8vJKixOQSsFBRcoF6rSYw9DHSB9RSYPiCWZoAE15StarArgUniTupleIdLi2EE,@object
	.comm	_ZN08NumbaEnv5numba7cpython8builtins6ol_max12_3clocals_3e4implB2v3B112c8tJTIeFIjxB2IKSgI4CrvQCk0Z4yRYcWsCAgXrKFt1X1ep5xVXqOgrqRcA0VJyfDGImpuWBqOT8vJKixOQSsFBRcoF6rSYw9DHSB9RSYPiCWZoAE15StarArgUniTupleIdLi2EE,8,8
	.section	".note.GNU-stack","",@progbits

"""The machine-limit bench's reading of oneDNN's verbose log."""

from gorila_tf.lab import bench_limit

LOG = [
    'onednn_verbose,info,cpu,isa:Intel AVX-512 with bfloat16 support',
    'onednn_verbose,primitive,exec,cpu,convolution,brgconv:avx512_core_bf16,'
    'forward_training,src_bf16::blocked:acdb::f0 wei_bf16:p:blocked:Acdb16a::f0 '
    'bia_f32::blocked:a::f0 dst_bf16::blocked:acdb::f0,,alg:convolution_direct,'
    'mb32_ic4oc32_ih84oh20kh8sh4dh0ph0_iw84ow20kw8sw4dw0pw0,0.61',
    'onednn_verbose,primitive,exec,cpu,convolution,brgconv:avx512_core_bf16,'
    'forward_training,src_bf16::blocked:acdb::f0 wei_bf16:p:blocked:Acdb16a::f0 '
    'bia_f32::blocked:a::f0 dst_bf16::blocked:acdb::f0,,alg:convolution_direct,'
    'mb32_ic4oc32_ih84oh20kh8sh4dh0ph0_iw84ow20kw8sw4dw0pw0,0.58',
    'onednn_verbose,exec,cpu,matmul,brg:avx512_core,undef,'
    'src_f32::blocked:ab::f0 wei_f32::blocked:ab::f0 dst_f32::blocked:ab::f0,,,'
    '32x3136:3136x512,0.2',
    'onednn_verbose,primitive,exec,cpu,reorder,jit:uni,undef,'
    'src_f32::blocked:abcd::f0 dst_bf16::blocked:acdb::f0,,,32x4x84x84,0.1',
]


def test_kernels_are_counted_by_primitive_implementation_and_data_types():
  # Convolutions and matrix products only; the version-2 line (no
  # 'primitive' field) counts too; reorders and info lines do not.
  assert bench_limit.count_kernels(LOG) == {
      'convolution brgconv:avx512_core_bf16 bf16/f32': 2,
      'matmul brg:avx512_core f32': 1}

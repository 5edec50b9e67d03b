import collections,re,os,json,subprocess,sys
def role(pid):
  try:
    env=open(f'/proc/{pid}/environ','rb').read().split(b'\0')
    for e in env:
      if e.startswith(b'TF_CONFIG='):
        t=json.loads(e[10:])['task']; return f"{t['type']}{t['index']}"
    a=open(f'/proc/{pid}/cmdline','rb').read().decode(errors='replace')
    return 'evaluator' if 'evaluat' in a else ('launcher' if 'launch' in a else str(pid))
  except Exception: return str(pid)
c=collections.Counter(); d=collections.defaultdict(collections.Counter); syms=collections.defaultdict(collections.Counter)
n=0; cache={}
for l in open(sys.argv[1]):
  m=re.match(r'\s*(\d+)/(\d+)\s+[0-9a-f]+\s+(.*)\s+\(([^()]*)\)\s*$',l.rstrip())
  if not m: continue
  pid=int(m.group(1)); sym=m.group(3).strip(); dso=os.path.basename(m.group(4))
  if dso.startswith('perf-'): dso='JIT(oneDNN)'
  r=cache.setdefault(pid, role(pid)); c[r]+=1; d[r][dso]+=1; n+=1; syms[dso][sym[:70]]+=1
for r,v in c.most_common():
  print(f"{r:10s} {100*v/n:5.1f}%  ", ', '.join(f"{k} {100*x/n:.1f}" for k,x in d[r].most_common(6)))
print()
for dso in ['kernel.kallsyms]','libc.so.6','libtensorflow_cc.so.2','libtensorflow_framework.so.2','libpython3.11.so.1.0']:
  key=[k for k in syms if k.endswith(dso) or k==dso or k=='['+dso]
  for k in key:
    tot=sum(syms[k].values())
    print(k, f"{100*tot/n:.1f}%:", '; '.join(f"{s} {100*x/n:.1f}" for s,x in syms[k].most_common(8)))

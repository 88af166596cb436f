import sys, time, resource, json
resource.setrlimit(resource.RLIMIT_AS, (3<<30, 3<<30))
sys.path.insert(0,'/tmp/r18')
from cands import CANDS
c, fn = sys.argv[1], sys.argv[2]
data=open(fn,'rb').read()
t=time.perf_counter()
try:
    r=CANDS[c](data); r={k:v for k,v in r.items() if v not in (None,[],{}) and k in ('make','dto','lat','offset','subjects','xmp_err','iptc_err')}
    if 'subjects' in r and isinstance(r['subjects'],list): r['subjects']=f"list[{len(r['subjects'])}]"
    if 'subjects' in r and isinstance(r['subjects'],str) and len(r['subjects'])>40: r['subjects']=f"str[{len(r['subjects'])}]"
    out='ok '+str(r)
except BaseException as e: out='EXC '+type(e).__name__+': '+str(e)[:80]
print(f'{(time.perf_counter()-t)*1000:.0f}ms', out, f'maxrss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss//1024}MB')

import sys, json, subprocess
sys.path.insert(0,'/tmp/r18')
from cands import *
files=sys.argv[1:]
for fn in files:
    data=open(fn,'rb').read()
    print('=====',fn)
    for n,c in CANDS.items():
        try: r=c(data); r={k:v for k,v in r.items() if v not in (None,[],{})}
        except Exception as e: r='EXC '+repr(e)[:120]
        print(f'  {n:9}', r)

import sys, time, statistics, io, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0,'/tmp/r18')
from cands import *
import pyexiv2; pyexiv2.set_log_level(4)
from PIL import Image
def pillow_exif_only(data):
    im = Image.open(io.BytesIO(data)); ex = im.getexif(); ex.get_ifd(0x8769); ex.get_ifd(0x8825)
    x = im.info.get('xmp') or im.info.get('XML:com.adobe.xmp'); return {}
CANDS2 = dict(CANDS); CANDS2['pillow_exif+rawxmp']=pillow_exif_only
def p50(fn, data, n):
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); 
        try: fn(data)
        except Exception: pass
        ts.append(time.perf_counter()-t)
    return statistics.median(ts)*1000
rows=[]
for ext in ['jpg','png','webp','tif','heic','avif']:
    data=open(f't.{ext}','rb').read()
    row=[ext, f'{len(data)/1e6:.1f}MB']
    for n,c in CANDS2.items():
        it = 200
        if n.startswith('pillow') and ext=='png': it=15
        row.append(f'{p50(c,data,it):.2f}')
    row.append(f'{p50(pillow_decode,data,8):.0f}')
    rows.append(row)
    print(' | '.join(row), flush=True)
print('cols: fmt size', list(CANDS2), 'pillow_full_decode')

import io, re, warnings
warnings.filterwarnings("ignore")
from fractions import Fraction

def f(v):
    try:
        if isinstance(v, tuple) and len(v)==2: return v[0]/v[1] if v[1] else None
        return float(v)
    except Exception: return None

def dms(v, ref):
    try:
        d=f(v[0]); m=f(v[1]); s=f(v[2]); x=d+m/60+s/3600
        if ref and str(ref).strip().upper()[:1] in ('S','W'): x=-x
        return round(x,6)
    except Exception: return None

# ---------------- Pillow ----------------
from PIL import Image, IptcImagePlugin
import pillow_heif; pillow_heif.register_heif_opener()
def pillow(data):
    im = Image.open(io.BytesIO(data))
    ex = im.getexif()
    e = ex.get_ifd(0x8769); g = ex.get_ifd(0x8825)
    r = {}
    r['dto']=e.get(0x9003); r['subsec']=e.get(0x9291); r['offset']=e.get(0x9011)
    r['make']=ex.get(0x010f); r['model']=ex.get(0x0110); r['imgdesc']=ex.get(0x010e)
    r['lens']=e.get(0xa434); r['focal']=f(e.get(0x920a)); r['fnum']=f(e.get(0x829d)); r['exposure']=f(e.get(0x829a)); r['iso']=e.get(0x8827)
    if g:
        r['lat']=dms(g.get(2), g.get(1)); r['lon']=dms(g.get(4), g.get(3)); r['alt']=f(g.get(6))
    xmp=None
    try: xmp = im.getxmp()   # needs defusedxml
    except Exception as exc: r['xmp_err']=repr(exc)[:60]
    if xmp:
        d = xmp.get('xmpmeta',{}).get('RDF',{}).get('Description',{})
        if isinstance(d, list): d = {k:v for x in d for k,v in x.items()}
        r['rating']=d.get('Rating'); r['xmp_dto']=d.get('DateTimeOriginal')
        t=d.get('title'); r['title']=t and t.get('Alt',{}).get('li')
        s=d.get('subject'); r['subjects']=s and s.get('Bag',{}).get('li')
    try:
        ip = IptcImagePlugin.getiptcinfo(im)
    except Exception as exc: ip=None; r['iptc_err']=repr(exc)[:60]
    if ip:
        k=ip.get((2,25)); r['iptc_kw']=[x.decode() for x in k] if isinstance(k,list) else ([k.decode()] if k else None)
        c=ip.get((2,120)); r['iptc_caption']=c.decode() if c else None
    return r

def pillow_decode(data):
    im = Image.open(io.BytesIO(data)); im.load(); return {}

# ---------------- exifread ----------------
import exifread, logging
logging.getLogger('exifread').setLevel(logging.CRITICAL)
def _ex(t,k):
    v=t.get(k); return v
def xr_val(v):
    if v is None: return None
    vals=v.values
    if isinstance(vals,str): return vals.strip()
    if isinstance(vals,list) and len(vals)==1:
        x=vals[0]
        return float(Fraction(x.num,x.den)) if hasattr(x,'num') and x.den else x
    return vals
def exifread_(data):
    t = exifread.process_file(io.BytesIO(data), details=False)
    r={}
    r['dto']=xr_val(t.get('EXIF DateTimeOriginal')); r['subsec']=xr_val(t.get('EXIF SubSecTimeOriginal')); r['offset']=xr_val(t.get('EXIF OffsetTimeOriginal'))
    r['make']=xr_val(t.get('Image Make')); r['model']=xr_val(t.get('Image Model')); r['imgdesc']=xr_val(t.get('Image ImageDescription'))
    r['lens']=xr_val(t.get('EXIF LensModel')); r['focal']=xr_val(t.get('EXIF FocalLength')); r['fnum']=xr_val(t.get('EXIF FNumber')); r['exposure']=xr_val(t.get('EXIF ExposureTime')); r['iso']=xr_val(t.get('EXIF ISOSpeedRatings'))
    la=t.get('GPS GPSLatitude'); lo=t.get('GPS GPSLongitude')
    if la: r['lat']=dms([ (x.num,x.den) for x in la.values], xr_val(t.get('GPS GPSLatitudeRef')))
    if lo: r['lon']=dms([ (x.num,x.den) for x in lo.values], xr_val(t.get('GPS GPSLongitudeRef')))
    r['alt']=xr_val(t.get('GPS GPSAltitude'))
    x=t.get('Image ApplicationNotes')
    r['xmp_raw']=bool(x)
    return r

# ---------------- piexif ----------------
import piexif
def piexif_(data):
    d = piexif.load(data)
    z=d['0th']; e=d['Exif']; g=d['GPS']; r={}
    dec=lambda v: v.decode() if isinstance(v,bytes) else v
    r['dto']=dec(e.get(0x9003)); r['subsec']=dec(e.get(0x9291)); r['offset']=dec(e.get(0x9011))
    r['make']=dec(z.get(0x010f)); r['model']=dec(z.get(0x0110)); r['imgdesc']=dec(z.get(0x010e))
    r['lens']=dec(e.get(0xa434)); r['focal']=f(e.get(0x920a)); r['fnum']=f(e.get(0x829d)); r['exposure']=f(e.get(0x829a)); r['iso']=e.get(0x8827)
    if g:
        r['lat']=dms(g.get(2), dec(g.get(1))); r['lon']=dms(g.get(4), dec(g.get(3))); r['alt']=f(g.get(6))
    return r

# ---------------- pyexiv2 ----------------
import pyexiv2
def rat(s):
    try:
        if '/' in s: a,b=s.split('/'); return int(a)/int(b) if int(b) else None
        return float(s)
    except Exception: return None
def dms_s(s, ref):
    try: return dms([tuple(map(int,p.split('/'))) for p in s.split()], ref)
    except Exception: return None
def pyexiv2_(data):
    with pyexiv2.ImageData(data) as img:
        ex=img.read_exif(); xm=img.read_xmp(); ip=img.read_iptc()
    r={}
    r['dto']=ex.get('Exif.Photo.DateTimeOriginal'); r['subsec']=ex.get('Exif.Photo.SubSecTimeOriginal'); r['offset']=ex.get('Exif.Photo.OffsetTimeOriginal')
    r['make']=ex.get('Exif.Image.Make'); r['model']=ex.get('Exif.Image.Model'); r['imgdesc']=ex.get('Exif.Image.ImageDescription')
    r['lens']=ex.get('Exif.Photo.LensModel'); r['focal']=rat(ex.get('Exif.Photo.FocalLength','')); r['fnum']=rat(ex.get('Exif.Photo.FNumber','')); r['exposure']=rat(ex.get('Exif.Photo.ExposureTime','')); r['iso']=ex.get('Exif.Photo.ISOSpeedRatings')
    if 'Exif.GPSInfo.GPSLatitude' in ex:
        r['lat']=dms_s(ex['Exif.GPSInfo.GPSLatitude'], ex.get('Exif.GPSInfo.GPSLatitudeRef')); r['lon']=dms_s(ex['Exif.GPSInfo.GPSLongitude'], ex.get('Exif.GPSInfo.GPSLongitudeRef')); r['alt']=rat(ex.get('Exif.GPSInfo.GPSAltitude',''))
    r['rating']=xm.get('Xmp.xmp.Rating'); r['xmp_dto']=xm.get('Xmp.exif.DateTimeOriginal'); r['title']=xm.get('Xmp.dc.title'); r['subjects']=xm.get('Xmp.dc.subject')
    r['iptc_kw']=ip.get('Iptc.Application2.Keywords'); r['iptc_caption']=ip.get('Iptc.Application2.Caption')
    return r

# ---------------- exiv2 (python-exiv2) ----------------
import exiv2
exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
def exiv2_(data):
    im = exiv2.ImageFactory.open(data); im.readMetadata()
    ex=im.exifData(); xm=im.xmpData(); ip=im.iptcData(); r={}
    def g(d,k):
        it=d.findKey(type(d).__name__ and (exiv2.ExifKey(k) if k.startswith('Exif') else exiv2.XmpKey(k) if k.startswith('Xmp') else exiv2.IptcKey(k)))
        return None if it==d.end() else it
    def s(d,k):
        it=g(d,k); return None if it is None else it.toString()
    def fl(k):
        it=g(ex,k); return None if it is None else it.toFloat(0)
    r['dto']=s(ex,'Exif.Photo.DateTimeOriginal'); r['subsec']=s(ex,'Exif.Photo.SubSecTimeOriginal'); r['offset']=s(ex,'Exif.Photo.OffsetTimeOriginal')
    r['make']=s(ex,'Exif.Image.Make'); r['model']=s(ex,'Exif.Image.Model'); r['imgdesc']=s(ex,'Exif.Image.ImageDescription')
    r['lens']=s(ex,'Exif.Photo.LensModel'); r['focal']=fl('Exif.Photo.FocalLength'); r['fnum']=fl('Exif.Photo.FNumber'); r['exposure']=fl('Exif.Photo.ExposureTime'); r['iso']=s(ex,'Exif.Photo.ISOSpeedRatings')
    la=g(ex,'Exif.GPSInfo.GPSLatitude')
    if la is not None:
        def dd(k,ref):
            it=g(ex,k); v=[it.toFloat(i) for i in range(3)]; x=v[0]+v[1]/60+v[2]/3600
            return round(-x if (s(ex,ref) or '')[:1] in 'SW' and s(ex,ref) else x,6)
        r['lat']=dd('Exif.GPSInfo.GPSLatitude','Exif.GPSInfo.GPSLatitudeRef'); r['lon']=dd('Exif.GPSInfo.GPSLongitude','Exif.GPSInfo.GPSLongitudeRef'); r['alt']=fl('Exif.GPSInfo.GPSAltitude')
    r['rating']=s(xm,'Xmp.xmp.Rating'); r['xmp_dto']=s(xm,'Xmp.exif.DateTimeOriginal'); r['title']=s(xm,'Xmp.dc.title'); r['subjects']=s(xm,'Xmp.dc.subject')
    r['iptc_kw']=s(ip,'Iptc.Application2.Keywords'); r['iptc_caption']=s(ip,'Iptc.Application2.Caption')
    return r

CANDS={'pillow':pillow,'exifread':exifread_,'piexif':piexif_,'pyexiv2':pyexiv2_,'exiv2':exiv2_}

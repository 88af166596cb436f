from PIL import Image
import numpy as np, pillow_heif
pillow_heif.register_heif_opener()
rng=np.random.default_rng(1)
h,w=2000,3000
y,x=np.mgrid[0:h,0:w]
a=np.stack([(x*255//w),(y*255//h),((x+y)*255//(w+h))],-1).astype(np.int16)
a=a+rng.integers(-12,12,a.shape)
im=Image.fromarray(np.clip(a,0,255).astype(np.uint8))
im.save('base.jpg',quality=90)
im.save('base.png')
im.save('base.webp',quality=85)
im.save('base.tif')
im.save('base.heic',quality=80)
im.save('base.avif',quality=60)

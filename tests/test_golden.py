"""Golden products: the pixels of every product of fixed runs, pinned by SHA-256.

Every step on (AstroDrizzle's defaults) on 4 simulated exposures x 2 chips of 128 x 128 pixels
(fixed seed), plus variants that exercise other paths (turbo final kernel with ``driz_cr_corr``;
``final_wht_type=ERR`` with ``skymethod=globalmin+match``, ``final_units=counts``).  For every
product file (final SCI/WHT/CTX, single sci/wht, median, blot, crmask, crclean) the data of each
HDU that holds pixels is hashed: SHA-256 of dtype (native byte order), shape and the bytes;
headers are not hashed (they carry dates and provenance).

The hashes were RECORDED from the unmodified code of commit da70246 (main, before the structural
rework of issue 15); the final products' ERR (and, in ``err_match_counts``, DQ) extensions were
added by issue 13, every earlier hash unchanged.  They prove that refactors keep the products bit-identical.  A deliberate
change of the products must update them here, with a commit message that explains why the
pixels changed.

The first three variants run on dazzle's own frame (``output_frame="dazzle"``, the default when
they were recorded); ``astrodrizzle_frame`` runs the defaults (AstroDrizzle's frame, the default
since issue 17), recorded when that default was made.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from astropy.io import fits

import dazzle

VARIANTS = {
    "defaults": {"output_frame": "dazzle"},
    "turbo_crcorr": {"final_kernel": "turbo", "driz_cr_corr": True, "output_frame": "dazzle"},
    "err_match_counts": {"final_wht_type": "ERR", "skymethod": "globalmin+match",
                         "final_units": "counts", "final_pixfrac": 0.8, "final_dq": True,
                         "output_frame": "dazzle"},
    "astrodrizzle_frame": {},
}

#: variant -> product file -> [hash per data HDU, in file order] (recorded at da70246)
GOLDEN = {
    'defaults': {
        'dzsim01_sci1_blt.fits': ['PRIMARY,1:b5c29a3f40c5f025e1bf25a75555dc93c9a8b6f497f8a75dfc0647d34264bf0a'],
        'dzsim01_sci1_crmask.fits': ['PRIMARY,1:99dc264e9a716a1235be22fb5079865b23d99b55b84fa741b901d3c534b0132a'],
        'dzsim01_sci2_blt.fits': ['PRIMARY,1:208719e3b19d315f48be97a9289d39802f949a5a6ee567adf3c0e2f73f168da5'],
        'dzsim01_sci2_crmask.fits': ['PRIMARY,1:7d94a8588a0608397c35ef60b938f42ddc3550ffb979a486384266143adee954'],
        'dzsim01_single_sci.fits': ['PRIMARY,1:3a79f77e0f54f92ebc0eff4eb135f26e86465425423b9846b592e621cf09e2c9'],
        'dzsim01_single_wht.fits': ['PRIMARY,1:8b511a0cf9f9ee7d07f4746aba44ede589d7e4108eafc4cd8c40bae0f68a0c62'],
        'dzsim02_sci1_blt.fits': ['PRIMARY,1:918a4ba1b79c63c099166026dd659b0faf970f61cf0f9acc88058feb141c3baa'],
        'dzsim02_sci1_crmask.fits': ['PRIMARY,1:17bb7a31e0d69227783b8ee7f294ec6ffcd947edfc43865e52e5312ea7b6f9b2'],
        'dzsim02_sci2_blt.fits': ['PRIMARY,1:80aab754ededf5af2e6ed8ce0f9bef92a2ed2eb3e810cb7857ada80a36198394'],
        'dzsim02_sci2_crmask.fits': ['PRIMARY,1:f9739e1eeeaa323e2f2daaf4cbfe333e989c66ae1188f6838eff38e5164816fb'],
        'dzsim02_single_sci.fits': ['PRIMARY,1:8e1ee2893922512d0a36b3e2dd8836861c8bc429545ca15a8cfa2737ce11880c'],
        'dzsim02_single_wht.fits': ['PRIMARY,1:b4aefcf966a451fe87f827e4719801483983ab9dabba0e19cb348095d0918e1d'],
        'dzsim03_sci1_blt.fits': ['PRIMARY,1:d859ab418647a156caac9ef822d69cfb4d2447ab7cd4e6c9cfdd70085770a3e1'],
        'dzsim03_sci1_crmask.fits': ['PRIMARY,1:8ff42c3da19ae63cc8a9ea66a70b2c492abf35fe7c5da223ed2af97645851370'],
        'dzsim03_sci2_blt.fits': ['PRIMARY,1:1408bb031782021d22104eac175cc880d19112b801310e8ea96a0e2718543dc7'],
        'dzsim03_sci2_crmask.fits': ['PRIMARY,1:53cb218eb38b960cb953ccc3e0d791b996626390ae535f908b17a2eaeb528586'],
        'dzsim03_single_sci.fits': ['PRIMARY,1:621e0772f169de94c2c7f751980c361205524116c66c22a9a0970c26e84bfb2a'],
        'dzsim03_single_wht.fits': ['PRIMARY,1:7b0fbf1caeb8e2ad7896df0a06245135af440f8ca2fc0e6ef46fc1c9b4f564d3'],
        'dzsim04_sci1_blt.fits': ['PRIMARY,1:f6ea66c9f640f5a7848110650d88d0e8703a1138eb7944802f9187b42d74eeaf'],
        'dzsim04_sci1_crmask.fits': ['PRIMARY,1:9dde537f5f6dfd366f1b058bae8cb365835ef27ae64c66b74ec7d28f8cb680cf'],
        'dzsim04_sci2_blt.fits': ['PRIMARY,1:06f40c60712d325501ad5d328a694877db5731e390eae3a6c2dca2437fa134dc'],
        'dzsim04_sci2_crmask.fits': ['PRIMARY,1:a374919f6c5a63d52f590d3f3d5c851eb477bd02f1a821819104ed1744092635'],
        'dzsim04_single_sci.fits': ['PRIMARY,1:9d1cc3271bb0b1e9d998af5b0f46411cba9796af204b2e7e6d545131c609833f'],
        'dzsim04_single_wht.fits': ['PRIMARY,1:94a9a2ce654446f81163659a31066b275169dc9f6538343141d119bc41d37146'],
        'gold_drz.fits': [
            'SCI,1:a5c4ee4f6568ae8d43e137dec5dddbc691d1c1cfeaac2cc5a6dace5272b5223b',
            'WHT,1:478c7ac4943186fca406a62b5edd990784bebdef9b46f0f2b0a298841e17914b',
            'CTX,1:6107a90001d0f76eb71db297145083c0268cf1585d0c673eeea573ffe802243a',
            'ERR,1:0f3e6d538b5626c6e0792f29e53de8162761b1fe7a9ee4a4e06d884c6eb8eb9d',  # added by issue 13 (final_err / final_dq)
        ],
        'gold_med.fits': ['PRIMARY,1:3bc09ac23d00a033ce95e1967251df315011d0b4a072b9695eeaa4db9e74632d'],
    },
    'err_match_counts': {
        'dzsim01_sci1_blt.fits': ['PRIMARY,1:870170370e990074a94cc0d7879112c59f2f7c89b998e9cc01f0fa29f09d6321'],
        'dzsim01_sci1_crmask.fits': ['PRIMARY,1:99dc264e9a716a1235be22fb5079865b23d99b55b84fa741b901d3c534b0132a'],
        'dzsim01_sci2_blt.fits': ['PRIMARY,1:6ce4fa2b4b038fdcf17076f178cfa18bc6ce270df05b761821c7575599a8ec8a'],
        'dzsim01_sci2_crmask.fits': ['PRIMARY,1:7d94a8588a0608397c35ef60b938f42ddc3550ffb979a486384266143adee954'],
        'dzsim01_single_sci.fits': ['PRIMARY,1:fd1691f3aefecd0837ceb062c45a2af3d78a6258bbd7ee61326fb0de88d7bc03'],
        'dzsim01_single_wht.fits': ['PRIMARY,1:8b511a0cf9f9ee7d07f4746aba44ede589d7e4108eafc4cd8c40bae0f68a0c62'],
        'dzsim02_sci1_blt.fits': ['PRIMARY,1:4c5d96646a1ca671c88e8d4a79ae6c881588ffe1bf6b1ef2f89c845e283a3267'],
        'dzsim02_sci1_crmask.fits': ['PRIMARY,1:17bb7a31e0d69227783b8ee7f294ec6ffcd947edfc43865e52e5312ea7b6f9b2'],
        'dzsim02_sci2_blt.fits': ['PRIMARY,1:62b8c97b4684c2ba91ab057e1f2fd8cdd46efbb9d2efd9bf2e35d69f6ae97d65'],
        'dzsim02_sci2_crmask.fits': ['PRIMARY,1:f9739e1eeeaa323e2f2daaf4cbfe333e989c66ae1188f6838eff38e5164816fb'],
        'dzsim02_single_sci.fits': ['PRIMARY,1:8e1ee2893922512d0a36b3e2dd8836861c8bc429545ca15a8cfa2737ce11880c'],
        'dzsim02_single_wht.fits': ['PRIMARY,1:b4aefcf966a451fe87f827e4719801483983ab9dabba0e19cb348095d0918e1d'],
        'dzsim03_sci1_blt.fits': ['PRIMARY,1:d87c68a2e722187e50f4f4fe69a2c9b6bd37939bc5e516ac0075904e5c677314'],
        'dzsim03_sci1_crmask.fits': ['PRIMARY,1:8ff42c3da19ae63cc8a9ea66a70b2c492abf35fe7c5da223ed2af97645851370'],
        'dzsim03_sci2_blt.fits': ['PRIMARY,1:9b8d8683a3467d98f9aa18d951912b18027fb6afe03dbc5c0c1b749b2e0b6280'],
        'dzsim03_sci2_crmask.fits': ['PRIMARY,1:53cb218eb38b960cb953ccc3e0d791b996626390ae535f908b17a2eaeb528586'],
        'dzsim03_single_sci.fits': ['PRIMARY,1:27dfa52fa58347d93d21f7abe7570360ed15489ac379d454477b4f68a3b4dc71'],
        'dzsim03_single_wht.fits': ['PRIMARY,1:7b0fbf1caeb8e2ad7896df0a06245135af440f8ca2fc0e6ef46fc1c9b4f564d3'],
        'dzsim04_sci1_blt.fits': ['PRIMARY,1:f396a6945b3f45c9bbc595072fa34f674c837b16468c6f6ef730a9c2f592ac02'],
        'dzsim04_sci1_crmask.fits': ['PRIMARY,1:9dde537f5f6dfd366f1b058bae8cb365835ef27ae64c66b74ec7d28f8cb680cf'],
        'dzsim04_sci2_blt.fits': ['PRIMARY,1:8fc9c419a4e9b7ee41ba6b82236427bce60aa8fb8c39bc8cb9adacbba5c2101b'],
        'dzsim04_sci2_crmask.fits': ['PRIMARY,1:a374919f6c5a63d52f590d3f3d5c851eb477bd02f1a821819104ed1744092635'],
        'dzsim04_single_sci.fits': ['PRIMARY,1:92cf73d473667524e1ae3929ee3ce2a379c456e939d4d648ab742e02ffe88e3b'],
        'dzsim04_single_wht.fits': ['PRIMARY,1:94a9a2ce654446f81163659a31066b275169dc9f6538343141d119bc41d37146'],
        'gold_drz.fits': [
            'SCI,1:cda2db13fa814f50141926b3d43942fdfd0fd68d6b0aedbdb6c8369269a7f65c',
            'WHT,1:15e480a26be8ee1ed17e4680fd0ef832e658afcbc25e8af7e324368dfd9b2451',
            'CTX,1:f76b98203cde32b3a7dd204c4b1a01a6ac669d444a6a568ec9df299250739937',
            'ERR,1:dafe87e61081525b7e2f7ff6ddcec9c2805c7080fd0c4318f23d79e07d32f77c',  # added by issue 13 (final_err / final_dq)
            'DQ,1:dfbd821f092fc5d5184647fcd03ad50ebaa2e4e0d499bb9eb84adac65f61d14a',  # added by issue 13 (final_err / final_dq)
        ],
        'gold_med.fits': ['PRIMARY,1:830b468f67751c8791b28e08a5cad72d7761bc93b36d8c306807abfb3760ff1a'],
    },
    'turbo_crcorr': {
        'dzsim01_crclean.fits': [
            'SCI,1:2187dffd20eb36706603c99226cd46030c6f4ab9d6cfafc97297eec4eb119cdc',
            'ERR,1:29234f916c6bf93b0b9318230c1d879e0ab4aa5510198def863b2bcb095becd3',
            'DQ,1:6edde2da81f1c602c4523eb2fc2f371728ab6ac993bf2f03923eaf05ef9285ba',
            'SCI,2:db0810279d4c8836bb717a651eb7df2860a9f144ac943bfc6ad489d4157962e6',
            'ERR,2:2a55b5dfa3a2715da2555a846a3745266901f8454716404cc54dca5bedf8c58e',
            'DQ,2:a651838828e7b6dd41e9ee81e59414f3d4850d59181483ff48982c3cf5ba213c',
        ],
        'dzsim01_sci1_blt.fits': ['PRIMARY,1:b5c29a3f40c5f025e1bf25a75555dc93c9a8b6f497f8a75dfc0647d34264bf0a'],
        'dzsim01_sci1_crmask.fits': ['PRIMARY,1:99dc264e9a716a1235be22fb5079865b23d99b55b84fa741b901d3c534b0132a'],
        'dzsim01_sci2_blt.fits': ['PRIMARY,1:208719e3b19d315f48be97a9289d39802f949a5a6ee567adf3c0e2f73f168da5'],
        'dzsim01_sci2_crmask.fits': ['PRIMARY,1:7d94a8588a0608397c35ef60b938f42ddc3550ffb979a486384266143adee954'],
        'dzsim01_single_sci.fits': ['PRIMARY,1:3a79f77e0f54f92ebc0eff4eb135f26e86465425423b9846b592e621cf09e2c9'],
        'dzsim01_single_wht.fits': ['PRIMARY,1:8b511a0cf9f9ee7d07f4746aba44ede589d7e4108eafc4cd8c40bae0f68a0c62'],
        'dzsim02_crclean.fits': [
            'SCI,1:26076bf0498a8f28d2616aeba8d1297729de5b13b2127376a8ac8788c2a79cc4',
            'ERR,1:4a4057c3fe5b2f131e490545f4f17a0eebdb5797a8430cc7e4fe741f97cd6308',
            'DQ,1:6edde2da81f1c602c4523eb2fc2f371728ab6ac993bf2f03923eaf05ef9285ba',
            'SCI,2:f7a91f9bae0f8414086b1791f937b64fb7fc79873f5437fe3c3145b0b046b987',
            'ERR,2:d30b2a7bc93f27f1eb9755e242889032a2c067cc0f0a1499a3d0fe8cf3b26d26',
            'DQ,2:a651838828e7b6dd41e9ee81e59414f3d4850d59181483ff48982c3cf5ba213c',
        ],
        'dzsim02_sci1_blt.fits': ['PRIMARY,1:918a4ba1b79c63c099166026dd659b0faf970f61cf0f9acc88058feb141c3baa'],
        'dzsim02_sci1_crmask.fits': ['PRIMARY,1:17bb7a31e0d69227783b8ee7f294ec6ffcd947edfc43865e52e5312ea7b6f9b2'],
        'dzsim02_sci2_blt.fits': ['PRIMARY,1:80aab754ededf5af2e6ed8ce0f9bef92a2ed2eb3e810cb7857ada80a36198394'],
        'dzsim02_sci2_crmask.fits': ['PRIMARY,1:f9739e1eeeaa323e2f2daaf4cbfe333e989c66ae1188f6838eff38e5164816fb'],
        'dzsim02_single_sci.fits': ['PRIMARY,1:8e1ee2893922512d0a36b3e2dd8836861c8bc429545ca15a8cfa2737ce11880c'],
        'dzsim02_single_wht.fits': ['PRIMARY,1:b4aefcf966a451fe87f827e4719801483983ab9dabba0e19cb348095d0918e1d'],
        'dzsim03_crclean.fits': [
            'SCI,1:53e81f3adcbe72f7c8a577aafdd98ea9a1e8a5f2b04806619b70c28624ab0818',
            'ERR,1:40fde40a092153b50019048273ae4d3853c21210b4b72df566ce557d36688273',
            'DQ,1:6edde2da81f1c602c4523eb2fc2f371728ab6ac993bf2f03923eaf05ef9285ba',
            'SCI,2:246f7691f90e2ad396287c4540c254f8ba223de163dc8f856a3556f76340f6ac',
            'ERR,2:0f495b5c294d7c182ca3ea1b0846c4338a6e16adaa41942303e8a869188016e1',
            'DQ,2:a651838828e7b6dd41e9ee81e59414f3d4850d59181483ff48982c3cf5ba213c',
        ],
        'dzsim03_sci1_blt.fits': ['PRIMARY,1:d859ab418647a156caac9ef822d69cfb4d2447ab7cd4e6c9cfdd70085770a3e1'],
        'dzsim03_sci1_crmask.fits': ['PRIMARY,1:8ff42c3da19ae63cc8a9ea66a70b2c492abf35fe7c5da223ed2af97645851370'],
        'dzsim03_sci2_blt.fits': ['PRIMARY,1:1408bb031782021d22104eac175cc880d19112b801310e8ea96a0e2718543dc7'],
        'dzsim03_sci2_crmask.fits': ['PRIMARY,1:53cb218eb38b960cb953ccc3e0d791b996626390ae535f908b17a2eaeb528586'],
        'dzsim03_single_sci.fits': ['PRIMARY,1:621e0772f169de94c2c7f751980c361205524116c66c22a9a0970c26e84bfb2a'],
        'dzsim03_single_wht.fits': ['PRIMARY,1:7b0fbf1caeb8e2ad7896df0a06245135af440f8ca2fc0e6ef46fc1c9b4f564d3'],
        'dzsim04_crclean.fits': [
            'SCI,1:200357f1f61c352cfe18cb846eb756bdee4732996ac7d50eab7fa27237617918',
            'ERR,1:689c067968113ac11dfbcf791a059be2ed27c8f3abf54503d19c44a15ce563fc',
            'DQ,1:6edde2da81f1c602c4523eb2fc2f371728ab6ac993bf2f03923eaf05ef9285ba',
            'SCI,2:4dd0c603cf2b272ed136575da0d0073f40c6e5b1be789639026dd7c14885f6d0',
            'ERR,2:e4d5e5aae61d579e28d38daa94a13641bbb2d78f3e12b285ce2a02fe2e455ac9',
            'DQ,2:a651838828e7b6dd41e9ee81e59414f3d4850d59181483ff48982c3cf5ba213c',
        ],
        'dzsim04_sci1_blt.fits': ['PRIMARY,1:f6ea66c9f640f5a7848110650d88d0e8703a1138eb7944802f9187b42d74eeaf'],
        'dzsim04_sci1_crmask.fits': ['PRIMARY,1:9dde537f5f6dfd366f1b058bae8cb365835ef27ae64c66b74ec7d28f8cb680cf'],
        'dzsim04_sci2_blt.fits': ['PRIMARY,1:06f40c60712d325501ad5d328a694877db5731e390eae3a6c2dca2437fa134dc'],
        'dzsim04_sci2_crmask.fits': ['PRIMARY,1:a374919f6c5a63d52f590d3f3d5c851eb477bd02f1a821819104ed1744092635'],
        'dzsim04_single_sci.fits': ['PRIMARY,1:9d1cc3271bb0b1e9d998af5b0f46411cba9796af204b2e7e6d545131c609833f'],
        'dzsim04_single_wht.fits': ['PRIMARY,1:94a9a2ce654446f81163659a31066b275169dc9f6538343141d119bc41d37146'],
        'gold_drz.fits': [
            'SCI,1:f29722515f3e0737318fe8cecf37d6941530648a635093cd738bca8582a9220f',
            'WHT,1:8b1d564edb06567eea127fec45f7ec0853e4356a5d63f64494f3c586cbe2f9f5',
            'CTX,1:4bb49306cde0988ee8eca5c98dcf1e1c0374c6d5bef709beaca33d1c48c0ea88',
            'ERR,1:79a7842f675b6f3c0bf62d435179e02806666dec187ef6d4748ed30e64fe8770',  # added by issue 13 (final_err / final_dq)
        ],
        'gold_med.fits': ['PRIMARY,1:3bc09ac23d00a033ce95e1967251df315011d0b4a072b9695eeaa4db9e74632d'],
    },
    'astrodrizzle_frame': {
        'dzsim01_sci1_blt.fits': ['PRIMARY,1:14cbe4127ba3633226b2b57a1e11fdd840cf58c50cb6d2625bedee7e54bbb166'],
        'dzsim01_sci1_crmask.fits': ['PRIMARY,1:a5ae649e685d516d1139718c7c3234ebcf87992de4f9e045ad6f2d04de01f0d0'],
        'dzsim01_sci2_blt.fits': ['PRIMARY,1:02d5e1205a41ff71f119e62d4a052cedf033ce80f666cf81f17351b26e65679c'],
        'dzsim01_sci2_crmask.fits': ['PRIMARY,1:7d94a8588a0608397c35ef60b938f42ddc3550ffb979a486384266143adee954'],
        'dzsim01_single_sci.fits': ['PRIMARY,1:858065c46db02b0ddf9d4555677c4ed9a61a6d7c611a3d77c0cc273d9d9bf7e7'],
        'dzsim01_single_wht.fits': ['PRIMARY,1:e9d3e56986ea0d83a89b566599ebdb75cfc6764d0b5658d6a5b7011c46fd9f99'],
        'dzsim02_sci1_blt.fits': ['PRIMARY,1:7a6c68c44c841df92a57ca5c9c55b7afb85ed007b8459324a6c2aeae29e0035d'],
        'dzsim02_sci1_crmask.fits': ['PRIMARY,1:193049cb68496acce95dda4bd17ed28a552f495943e2020379fdcc66b0be5c3d'],
        'dzsim02_sci2_blt.fits': ['PRIMARY,1:094be069acfcff24561f21e787d2ab61ee07057e45a4c90da79d061ce2a1090b'],
        'dzsim02_sci2_crmask.fits': ['PRIMARY,1:48ca97bbdfdf0ad6b42ab7230f8b0eee03513fb8ba7a81c6491e5d78b409bb2f'],
        'dzsim02_single_sci.fits': ['PRIMARY,1:b1bcb2e40eb7279e2fd27e5ab06be01743dc86972696dbaab7fc258fd4b925ef'],
        'dzsim02_single_wht.fits': ['PRIMARY,1:cc1ff12e66257ad012273adfa44e6d00fc2fb8d36749f304ee190f2df9bd8f44'],
        'dzsim03_sci1_blt.fits': ['PRIMARY,1:5a17dcd100c86cca756fb510402674bc144d97543a9a5a90665a9e595fe1f134'],
        'dzsim03_sci1_crmask.fits': ['PRIMARY,1:3e2897ed66e55449885156f54d713ce59e691929b2c4dd0a2f9dc70cb6d5f618'],
        'dzsim03_sci2_blt.fits': ['PRIMARY,1:86b1ffa024ab599d6fd6171f42d0cdf376535a4d53ed62ae6d122317344e8705'],
        'dzsim03_sci2_crmask.fits': ['PRIMARY,1:c3d90d83f142c48e617c5a9c3fcecf11faa637ecdb6a35033d6a9e5103be5c8d'],
        'dzsim03_single_sci.fits': ['PRIMARY,1:03990ae0b9033e2c5f290e03b88ef80f961e156fb638b5ccc1f911c661ee1df8'],
        'dzsim03_single_wht.fits': ['PRIMARY,1:f75a0ec8d5107374af3ea1a3bb2473872e16ddfa8ed97d9e34238056cccc21de'],
        'dzsim04_sci1_blt.fits': ['PRIMARY,1:50f511b1f7555182fb9795f9ececd8500d6db809c9045c329d10f2998dde9e58'],
        'dzsim04_sci1_crmask.fits': ['PRIMARY,1:0610aa9971c89ad9dde367fff7353838359be64b287a6677cfe07cd37305ab2e'],
        'dzsim04_sci2_blt.fits': ['PRIMARY,1:7a55a010bd3d3b116dfce20a70713c1d3f4949d1e45195d7b9ea23464c3fff00'],
        'dzsim04_sci2_crmask.fits': ['PRIMARY,1:03390eb5e92b76cd9585495fd4345b1a1ffe4892fa9e6a5a2a2f9c1a63558d83'],
        'dzsim04_single_sci.fits': ['PRIMARY,1:11b8ddaa9652d174361a8cba9da880cfa11ef7c5a192ad6724d2a1f09c591df8'],
        'dzsim04_single_wht.fits': ['PRIMARY,1:2a954f9b24c637d74f009974c46c144d52e420cf9374d320ace1ab61df0fca09'],
        'gold_drz.fits': [
            'SCI,1:6af84cc43377149d1f893724026e68b0ae8d8dffebf2ce33b99900c8235be8db',
            'WHT,1:d70ce8512cbaf094c9acd54b4c49d1cd2e5c6732ec95ef959d1071b91fe40852',
            'CTX,1:09d613a62da91c159b5745c27c84ba5670abc44e979be114242b9ff9948ec0cb',
            'ERR,1:39141e331f4c335239f685352eafc1353ef2d24aa2121b905a25b23d91b7b0a5',  # added by issue 13 (final_err)
        ],
        'gold_med.fits': ['PRIMARY,1:297f53b83385c698f2bd89dc4e02cf95ec8b7461182fe22c927457fe72adca7d'],
    },
}


def pixel_digest(arr) -> str:
    """SHA-256 of an array's dtype (native byte order), shape and bytes."""
    a = np.asarray(arr)
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="), copy=False))
    h = hashlib.sha256()
    h.update(a.dtype.str.encode())
    h.update(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def product_digests(out_dir) -> dict:
    """{file name: [pixel digest of each HDU with data]} for every FITS product in ``out_dir``."""
    out = {}
    for name in sorted(os.listdir(out_dir)):
        if not name.endswith(".fits"):
            continue
        with fits.open(os.path.join(out_dir, name), memmap=False) as h:
            out[name] = [f"{hdu.name},{hdu.ver}:{pixel_digest(hdu.data)}" for hdu in h
                         if hdu.data is not None]
    return out


@pytest.fixture(scope="module")
def golden_inputs(simulated):
    return simulated(n_exposures=4, chips=2, size=128, seed=15, n_stars=12, min_separation=12.0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_products_bit_identical(golden_inputs, tmp_path, variant):
    out = tmp_path / "out"
    out.mkdir()
    dazzle.run(golden_inputs.files, str(out / "gold"), scheduler="threads", **VARIANTS[variant])
    got = product_digests(out)
    kinds = {"_drz.fits", "_med.fits", "_single_sci.fits", "_single_wht.fits", "_blt.fits",
             "_crmask.fits"} | ({"_crclean.fits"} if VARIANTS[variant].get("driz_cr_corr") else set())
    assert {k for k in kinds if any(n.endswith(k) for n in got)} == kinds
    assert got == GOLDEN[variant]
